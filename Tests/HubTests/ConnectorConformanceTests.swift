import Foundation
import Testing
import Hub
import HubTesting
@testable import Connectors
import SimCounty

/// Every shipped connector against the connector conformance kit, and a connector broken on
/// purpose to show the kit catches it.
@Suite struct ConnectorConformanceTests {
    static func options(_ yaml: String) throws -> ConfigNode { try ConfigNode.parse(yaml, file: "fetch.yaml") }

    static func make<C: Connector>(_ type: C.Type, _ yaml: String, directory: String = ".") throws -> C {
        let r = ConfigReader()
        guard let c = C.make(options: try options(yaml), directory: directory, reader: r) else {
            throw DiagnosticList(r.diagnostics)
        }
        return c
    }

    static let period = Period("2026-10")!

    @Test func theFileConnectorKeepsTheContract() throws {
        let dir = scratchDirectory("conn-file")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("drop"), withIntermediateDirectories: true)
        let failures = ConnectorConformance(
            serving: { bytes in
                try Data(bytes).write(to: dir.appendingPathComponent("feed-2026-10.csv"))
                return .init(connector: try Self.make(FileConnector.self, #"{ path: "feed-{period}.csv" }"#, directory: dir.path),
                             context: FetchContext(source: "feed", period: Self.period, environment: [:]))
            },
            failing: [
                ("a file not delivered yet", .init(connector: try Self.make(FileConnector.self, #"{ path: "nothing-{period}.csv" }"#, directory: dir.path),
                                                   context: FetchContext(source: "feed", period: Self.period, environment: [:])), true),
                ("an empty drop folder", .init(connector: try Self.make(FileConnector.self, #"{ dir: "drop", pattern: "*.csv" }"#, directory: dir.path),
                                               context: FetchContext(source: "feed", period: Self.period, environment: [:])), true),
            ]).run()
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func theHTTPConnectorKeepsTheContract() throws {
        let served = Locked<[UInt8]>([])
        let server = try LoopbackHTTPServer { req in
            switch req.path {
            case "/feed": return .init(status: 200, headers: [("Content-Type", "text/csv")], body: served.value, chunked: true, chunkSize: 65536)
            case "/busy": return .text("稍后再试", status: 503)
            default: return .text("not found", status: 404)
            }
        }
        defer { server.stop() }
        let secret = "k3y-\(UUID().uuidString.prefix(8))"
        let env = ["FEED_KEY": secret, "FEED_TOKEN": secret]
        func http(_ path: String, _ auth: String) throws -> ConnectorConformance.Feed {
            .init(connector: try Self.make(HTTPConnector.self, "{ url: \"\(server.baseURL)\(path)\", \(auth) }"),
                  context: FetchContext(source: "feed", period: Self.period, environment: env))
        }
        let closedPort = try unusedLoopbackPort()
        let failures = ConnectorConformance(
            serving: { bytes in served.value = bytes; return try http("/feed", "auth: { bearer_env: FEED_TOKEN }") },
            failing: [
                ("503 with a key in the query", try http("/busy", "auth: { api_key_env: FEED_KEY, param: key }"), true),
                ("404 with a bearer token", try http("/gone", "auth: { bearer_env: FEED_TOKEN }"), false),
                ("nothing listening", .init(connector: try Self.make(HTTPConnector.self, "{ url: \"http://127.0.0.1:\(closedPort)/x?token=${FEED_TOKEN}\", connect_timeout: 2 }"),
                                            context: FetchContext(source: "feed", period: Self.period, environment: env)), true),
            ],
            secret: secret).run()
        #expect(failures.isEmpty, "\(failures)")
    }

    /// A connector that reads the whole feed before handing it on, calls its failures final and
    /// repeats its URL (secret included) in errors: each fault is caught by its check.
    @Test func aBrokenConnectorIsCaught() throws {
        struct Hoarding: Connector {
            static let kind = "hoarding"
            static let optionsHelp: [(key: String, help: String)] = []
            static func make(options: ConfigNode, directory: String, reader: ConfigReader) -> Hoarding? { nil }
            let bytes: [UInt8]
            let fail: Bool
            let secret: String
            func fetch(_ context: FetchContext, into sink: any DocumentSink) throws {
                if fail { throw FetchError("GET http://x/?key=\(secret) 失败", retryable: false) }
                try sink.begin(document: "all")
                try bytes.withUnsafeBytes { try sink.write($0) }
                _ = try sink.end()
            }
        }
        let context = FetchContext(source: "x", period: Self.period, environment: [:])
        let failures = ConnectorConformance(
            serving: { .init(connector: Hoarding(bytes: $0, fail: false, secret: ""), context: context) },
            failing: [("a timeout", .init(connector: Hoarding(bytes: [], fail: true, secret: "s3cret"), context: context), true)],
            secret: "s3cret").run()
        #expect(Set(failures.map(\.check)) == ["streams", "failuresAreClassified", "noSecretsInMessages"], "\(failures)")

        // One that streams but carries on when the sink fails.
        struct Swallowing: Connector {
            static let kind = "swallowing"
            static let optionsHelp: [(key: String, help: String)] = []
            static func make(options: ConfigNode, directory: String, reader: ConfigReader) -> Swallowing? { nil }
            let bytes: [UInt8]
            func fetch(_ context: FetchContext, into sink: any DocumentSink) throws {
                try sink.begin(document: "all")
                for start in stride(from: 0, to: bytes.count, by: 1 << 16) {
                    try? bytes[start..<min(start + (1 << 16), bytes.count)].withUnsafeBytes { try sink.write($0) }
                }
                _ = try sink.end()
            }
        }
        let swallowed = ConnectorConformance(serving: { .init(connector: Swallowing(bytes: $0), context: context) }, failing: []).run()
        #expect(swallowed.map(\.check) == ["stopsWhenTheSinkFails"], "\(swallowed)")
    }
}
