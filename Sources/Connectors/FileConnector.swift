import Foundation
public import Hub
#if canImport(Glibc)
import Glibc
#endif

/// Reads a feed from the file system: one file, or every matching file in a drop folder.
///
/// ```yaml
/// connector: file
/// fetch:
///   path: samples/yibao_setl_{period_compact}.csv   # relative to the mapping file's folder
/// # or a drop folder, files read in name order:
/// fetch:
///   dir: /srv/hub/drop/yibao
///   pattern: "*{period_compact}*.csv"
/// ```
public struct FileConnector: Connector {
    public static let kind = "file"
    public static let optionsHelp: [(key: String, help: String)] = [
        ("path", "一个文件的路径；可含 {period}、{period_compact}、${环境变量}；相对路径从映射文件所在目录算起"),
        ("dir", "投递目录：读取其中所有匹配 pattern 的文件（按文件名顺序）"),
        ("pattern", "与 dir 同用的文件名通配符，如 \"*{period_compact}*.csv\"，默认 \"*\""),
        ("chunk_size", "每次读取的字节数，默认 262144"),
    ]

    var path: String?
    var dir: String?
    var pattern: String
    var chunkSize: Int
    let directory: String

    public static func make(options: ConfigNode, directory: String, reader r: ConfigReader) -> FileConnector? {
        let before = r.diagnostics.count
        let m = r.mapping(options, what: "fetch（file 连接器）", allowed: optionsHelp.map(\.key))
        let path = r.string(m["path"]?.0, what: "fetch.path")
        let dir = r.string(m["dir"]?.0, what: "fetch.dir")
        if (path == nil) == (dir == nil) {
            r.error(options.location, "file 连接器须给出 path（一个文件）或 dir（投递目录），二者取一")
        }
        if m["pattern"] != nil && dir == nil { r.error(m["pattern"]!.1, "pattern 只能与 dir 同用") }
        let chunk = r.int(m["chunk_size"]?.0, what: "fetch.chunk_size", range: 4096...(64 << 20)) ?? 262_144
        guard r.diagnostics.count == before else { return nil }
        return FileConnector(path: path, dir: dir, pattern: r.string(m["pattern"]?.0, what: "pattern") ?? "*", chunkSize: chunk, directory: directory)
    }

    func resolve(_ p: String) -> String {
        p.hasPrefix("/") ? p : (directory as NSString).appendingPathComponent(p)
    }

    public func fetch(_ context: FetchContext, into sink: any DocumentSink) throws {
        var files: [String] = []
        if let path {
            let full = resolve(try context.expand(path))
            guard FileManager.default.fileExists(atPath: full) else {
                throw FetchError("文件不存在：\(full)（数据可能尚未送达）", retryable: true, notDelivered: true)
            }
            files = [full]
        } else if let dir {
            let folder = resolve(try context.expand(dir))
            let glob = try context.expand(pattern)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
                throw FetchError("投递目录不存在或无法读取：\(folder)", retryable: true)
            }
            files = names.sorted().filter { fnmatch(glob, $0, 0) == 0 && !$0.hasPrefix(".") }.map { (folder as NSString).appendingPathComponent($0) }
            if files.isEmpty { throw FetchError("投递目录 \(folder) 中没有匹配 \(glob) 的文件（数据可能尚未送达）", retryable: true, notDelivered: true) }
        }
        for file in files { try read(file, into: sink) }
    }

    func read(_ file: String, into sink: any DocumentSink) throws {
        guard let handle = FileHandle(forReadingAtPath: file) else {
            throw FetchError("无法打开文件：\(file)", retryable: false)
        }
        defer { try? handle.close() }
        try sink.begin(document: (file as NSString).lastPathComponent)
        while true {
            let data: Data
            do { data = try handle.read(upToCount: chunkSize) ?? Data() }
            catch { throw FetchError("读取 \(file) 出错：\(error)", retryable: false) }
            if data.isEmpty { break }
            try data.withUnsafeBytes { try sink.write($0) }
        }
        _ = try sink.end()
    }
}
