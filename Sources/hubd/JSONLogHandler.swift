import Foundation
import Logging

/// One JSON object per line on standard error, for journald and log collectors: time, level,
/// label, message and metadata (run ids, sources). Used when standard error is not a terminal.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var obj: [String: Any] = ["time": ISO8601DateFormatter().string(from: Date()), "level": "\(event.level)", "label": label, "message": "\(event.message)"]
        var all = metadata
        if let m = event.metadata { all.merge(m) { $1 } }
        for (k, v) in all { obj[k] = "\(v)" }
        guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        FileHandle.standardError.write(data + Data("\n".utf8))
    }
}
