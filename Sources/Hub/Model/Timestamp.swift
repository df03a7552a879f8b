import Foundation

/// Moments as the hub stores them: ISO 8601 in the county's time (UTC+8), `2026-11-03T02:00:00+08:00`.
public enum Timestamp {
    public static func now() -> String { string(Date()) }

    public static func string(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "Asia/Shanghai")
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }
}
