import Foundation

/// Where a mappings folder's record types (`types/`) and rules (`rules/`) are: in the folder
/// itself, or else in the nearest folder above it that has them. A county's own folder of feed
/// mappings (say `Mappings/examples/yanling/`) then shares the shipped types and rules without
/// copies, and adds its own by creating the folder.
public enum MappingsFolder {
    public static func types(of mappings: URL) -> URL { nearest("types", from: mappings) }
    public static func rules(of mappings: URL) -> URL { nearest("rules", from: mappings) }

    static func nearest(_ name: String, from mappings: URL) -> URL {
        let fm = FileManager.default
        var dir = mappings.standardizedFileURL
        for _ in 0..<8 {
            var isDir: ObjCBool = false
            let candidate = dir.appendingPathComponent(name)
            if fm.fileExists(atPath: candidate.path, isDirectory: &isDir), isDir.boolValue { return candidate }
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { break }
            dir = parent
        }
        return mappings.appendingPathComponent(name)
    }
}
