import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
@testable import Connectors
import SimCounty

/// The http connector through real libcurl against a real HTTP server on 127.0.0.1.
@Suite struct HTTPConnectorTests {
    static let people: [(String, String)] = (1...5).map { ("姓名\($0)", makeID("411081", "19800101", $0)) }

    static func page(_ items: ArraySlice<(String, String)>, next: String? = nil) -> String {
        let list = items.map { #"{"xm":"\#($0.0)","sfzh":"\#($0.1)","jzlb":"农村低保","ksrq":"2026-10-01"}"# }.joined(separator: ",")
        return #"{"code":0,"data":{"list":[\#(list)]\#(next.map { #","next":"\#($0)""# } ?? "")}}"#
    }

    static func mapping(url: String, extra: String = "") -> String {
        """
        source: dibao
        connector: http
        fetch:
          url: "\(url)"
        \(extra)
        format: json
        json: { records_at: data.list, cursor_at: data.next }
        record: assistance_enrollment
        fields:
          id_number: sfzh
          name: xm
          program: jzlb
          started_on: ksrq
        """
    }

    func pull(_ text: String, env: [String: String] = [:], dir: URL = scratchDirectory("http")) throws -> (PullResult, SQLiteStore) {
        let m = try loader().load(text: text, file: "dibao.yaml", directory: dir.path)
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let r = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: Period("2026-10")!, environment: env)
        return (r, store)
    }

    @Test func pageNumbersWithBearerTokenFromTheEnvironment() throws {
        let server = try LoopbackHTTPServer { req in
            guard req.headers["authorization"] == "Bearer s3cret" else { return .text("no", status: 401) }
            let n = Int(req.query["pageNo"] ?? "") ?? 0
            let size = Int(req.query["pageSize"] ?? "") ?? 0
            let items = Self.people.dropFirst((n - 1) * size).prefix(size)
            return .text(Self.page(items), contentType: "application/json")
        }
        defer { server.stop() }
        let (r, store) = try pull(Self.mapping(url: "${DIBAO_URL}/api/dibao?month={period}", extra: """
          auth: { bearer_env: DIBAO_TOKEN }
          page: { style: page, param: pageNo, size_param: pageSize, size: 2 }
        """), env: ["DIBAO_URL": server.baseURL, "DIBAO_TOKEN": "s3cret"])
        #expect(r.counts.inserted == 5)
        #expect(r.counts.documents == 3)
        #expect(server.requestLog.map { $0.query["pageNo"] } == ["1", "2", "3"])
        #expect(server.requestLog.allSatisfy { $0.query["month"] == "2026-10" })
        let stored = try store.records(of: shippedTypes["assistance_enrollment"]!, source: "dibao")
        #expect(Set(stored.compactMap { $0["id_number"]?.description }) == Set(Self.people.map(\.1)))
        // The secret never reaches the run history.
        #expect(try store.query("SELECT * FROM runs").description.contains("s3cret") == false)
    }

    @Test func offsetAndCursorPagination() throws {
        let server = try LoopbackHTTPServer { req in
            if req.path == "/offset" {
                let off = Int(req.query["start"] ?? "0")!
                return .text(Self.page(Self.people.dropFirst(off).prefix(2)))
            }
            // cursor: c0 → c1 → c2 → end
            let c = Int((req.query["cursor"] ?? "c0").dropFirst())!
            let items = Self.people.dropFirst(c * 2).prefix(2)
            return .text(Self.page(items, next: c < 2 ? "c\(c + 1)" : nil))
        }
        defer { server.stop() }
        let (a, _) = try pull(Self.mapping(url: server.baseURL + "/offset", extra: "  page: { style: offset, param: start, size: 2 }"))
        #expect(a.counts.inserted == 5)
        let (b, _) = try pull(Self.mapping(url: server.baseURL + "/cursor", extra: "  page: { style: cursor, param: cursor }"))
        #expect(b.counts.inserted == 5 && b.counts.documents == 3)
    }

    @Test func anErrorAnswerFailsThePullAndLeavesTheStoreAsItWas() throws {
        let fail = Locked(false)
        let server = try LoopbackHTTPServer { _ in
            fail.value ? .text("系统维护中", status: 503) : .text(Self.page(Self.people[0...]))
        }
        defer { server.stop() }
        let dir = scratchDirectory("http")
        let text = Self.mapping(url: server.baseURL + "/x")
        let (first, store) = try pull(text, dir: dir)
        #expect(first.counts.inserted == 5)
        let before = try store.records(of: shippedTypes["assistance_enrollment"]!, source: nil)
        fail.value = true
        #expect {
            _ = try pull(text, dir: dir)
        } throws: { e in
            guard let e = e as? PullError else { return false }
            return e.retryable && e.message.contains("HTTP 503") && e.message.contains("系统维护中")
        }
        #expect(try store.records(of: shippedTypes["assistance_enrollment"]!, source: nil) == before)
        #expect(try store.runs(source: "dibao", limit: 1).first?.status == .failed)
    }

    @Test func aTruncatedBodyStoresNothingFromIt() throws {
        // Announces the whole page but closes after most of it: the rows already decoded must not land.
        let body = Array(Self.page(Self.people[0...]).utf8)
        let server = try LoopbackHTTPServer { _ in
            LoopbackHTTPServer.Response(status: 200, headers: [("Content-Type", "application/json")], body: body, truncateAt: body.count - 20)
        }
        defer { server.stop() }
        let dir = scratchDirectory("http")
        #expect {
            _ = try pull(Self.mapping(url: server.baseURL + "/x"), dir: dir)
        } throws: { e in
            let m = (e as? PullError)?.message ?? ""
            return m.contains("不完整")
        }
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        #expect(try store.records(of: shippedTypes["assistance_enrollment"]!, source: nil).isEmpty)
        #expect(try store.query("SELECT count(*) AS n FROM quarantine").first?["n"] == "0")
    }

    @Test func unreachableHostAndMissingSecretAreClearErrors() throws {
        // A port nobody listens on.
        let probe = try LoopbackHTTPServer { _ in .text("") }
        let url = probe.baseURL
        probe.stop()
        #expect {
            _ = try pull(Self.mapping(url: url + "/x", extra: "  connect_timeout: 2"))
        } throws: { ($0 as? PullError)?.message.contains("无法连接") == true }

        #expect {
            _ = try pull(Self.mapping(url: "http://127.0.0.1:9/x", extra: "  auth: { api_key_env: DIBAO_KEY, param: key }"))
        } throws: { ($0 as? PullError)?.message.contains("DIBAO_KEY") == true }
    }

    @Test func keysInQueryStringsAreRedactedInMessages() {
        #expect(CurlClient.redact("http://h/p?month=2026-10&api_key=abc&page=2") == "http://h/p?month=2026-10&api_key=***&page=2")
    }
}

