import Foundation

/// Where a connector sends a feed's bytes. Each document (a file, one page of an API) is framed
/// by `begin` and `end`; `end` returns what the decoder learnt (rows, next-page cursor), which
/// paging connectors use to decide whether to fetch another page.
public protocol DocumentSink: AnyObject {
    func begin(document name: String) throws
    func write(_ bytes: UnsafeRawBufferPointer) throws
    func end() throws -> DocumentInfo
}

/// What a connector knows about the pull it serves.
public struct FetchContext: Sendable {
    public var source: String
    public var period: Period
    /// Environment for `${VAR}` substitution and secrets (the process environment by default).
    public var environment: [String: String]
    public init(source: String, period: Period, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.source = source; self.period = period; self.environment = environment
    }

    /// Replaces `{period}` (2026-10), `{period_compact}` (202610), `{year}`, `{month}` and
    /// `${VAR}` / `${VAR:-default}` from the environment.
    public func expand(_ template: String) throws -> String {
        var s = template
        s = s.replacingOccurrences(of: "{period}", with: period.description)
        s = s.replacingOccurrences(of: "{period_compact}", with: period.compact)
        s = s.replacingOccurrences(of: "{year}", with: String(period.year))
        s = s.replacingOccurrences(of: "{month}", with: pad(period.month, 2))
        while let open = s.range(of: "${") {
            guard let close = s.range(of: "}", range: open.upperBound..<s.endIndex) else { break }
            let inner = String(s[open.upperBound..<close.lowerBound])
            let parts = inner.components(separatedBy: ":-")
            let name = parts[0]
            guard let value = environment[name].flatMap({ $0.isEmpty ? nil : $0 }) ?? (parts.count > 1 ? parts[1...].joined(separator: ":-") : nil) else {
                throw FetchError("环境变量 \(name) 未设置（在 \(template) 中使用）", retryable: false)
            }
            s.replaceSubrange(open.lowerBound..<close.upperBound, with: value)
        }
        return s
    }

    /// A secret named by an `*_env` option: read from the environment only, never from files.
    public func secret(_ name: String) throws -> String {
        guard let v = environment[name], !v.isEmpty else {
            throw FetchError("密钥环境变量 \(name) 未设置；密钥只从环境变量读取，不写进映射文件", retryable: false)
        }
        return v
    }
}

/// A fetch that failed: unreachable host, HTTP error, truncated body, missing file.
public struct FetchError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// Whether trying again later may help (a timeout or a 503), as opposed to a bad URL.
    public var retryable: Bool
    /// Seconds the server asked us to wait (HTTP Retry-After), if it said.
    public var retryAfter: Double? = nil
    /// The feed is not there yet (no file in the drop folder, HTTP 404): a late delivery to wait
    /// for, not a failure to give up on.
    public var notDelivered = false
    public init(_ message: String, retryable: Bool, retryAfter: Double? = nil, notDelivered: Bool = false) {
        self.message = message; self.retryable = retryable; self.retryAfter = retryAfter; self.notDelivered = notDelivered
    }
    public var description: String { message }
}

/// A connector plugin: fetches one feed for one period and streams its bytes into a sink.
///
/// To add a connector: write one file in `Sources/Connectors/` with a type conforming to this
/// protocol, add one line to `BuiltinConnectors.all`, and run `ConnectorConformance` (HubTesting)
/// in its test. `make` reads the mapping's `fetch:` options, reporting each mistake through the
/// reader with its line and column; it is called when a mapping loads, so a typo is caught by
/// `hubd mapping check` and never at 2 a.m. `fetch` must stream (never hold the whole feed),
/// throw `FetchError` on failure, and may call the sink for several documents (pages, files).
public protocol Connector: Sendable {
    static var kind: String { get }
    /// The options a mapping's `fetch:` may hold, for documentation and `hubd connectors`.
    static var optionsHelp: [(key: String, help: String)] { get }
    static func make(options: ConfigNode, directory: String, reader: ConfigReader) -> Self?
    func fetch(_ context: FetchContext, into sink: any DocumentSink) throws
}

/// The connector kinds an installation offers, by name.
public struct ConnectorRegistry: Sendable {
    public struct Kind: Sendable {
        public var name: String
        public var optionsHelp: [(key: String, help: String)]
        public var make: @Sendable (ConfigNode, String, ConfigReader) -> (any Connector)?
    }
    public private(set) var kinds: [String: Kind] = [:]

    public init(_ types: [any Connector.Type]) {
        for t in types {
            kinds[t.kind] = Kind(name: t.kind, optionsHelp: t.optionsHelp, make: { t.make(options: $0, directory: $1, reader: $2) })
        }
    }
}
