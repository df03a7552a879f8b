import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
@testable import Connectors
import SimCounty

/// A broken department server never corrupts the store: every fault gives a clear run error,
/// is marked retryable or not, and leaves the store exactly as the last good pull left it.
@Suite(.serialized) struct SourceFaultTests {
    static let csv = "结算ID,身份证号,结算时间,医疗费总额\n" + (1...40).map { "S\($0),\(makeID("411081", "19600101", $0)),2026-10-01 10:00:00,\(50000 + $0)" }.joined(separator: "\n") + "\n"
    static let json = #"{"data":{"list":["# + (1...40).map { #"{"id":"S\#($0)","sfzh":"\#(makeID("411081", "19600101", $0))","t":"2026-10-01 10:00:00","c":"60000"}"# }.joined(separator: ",") + "]}}"
    static let xml = "<?xml version=\"1.0\"?><list>" + (1...40).map { "<Claim><Id>S\($0)</Id><IdNo>\(makeID("411081", "19600101", $0))</IdNo><T>2026-10-01 10:00:00</T><C>60000</C></Claim>" }.joined() + "</list>"

    enum Fault: String, CaseIterable {
        case status500, status503RetryAfter, noAnswer, stallMidBody, resetMidBody, truncatedCSV, truncatedJSON, truncatedXML,
             brokenJSON, brokenXML, htmlInsteadOfJSON, endless
    }

    struct Case { var format: String; var response: LoopbackHTTPServer.Response; var retryable: Bool; var says: String }

    static func scenario(_ f: Fault) -> Case {
        func r(_ body: String, _ type: String, status: Int = 200) -> LoopbackHTTPServer.Response {
            LoopbackHTTPServer.Response(status: status, headers: [("Content-Type", type)], body: Array(body.utf8))
        }
        switch f {
        case .status500: return Case(format: "csv", response: r("内部错误", "text/plain", status: 500), retryable: true, says: "HTTP 500")
        case .status503RetryAfter:
            var x = r("维护中", "text/plain", status: 503); x.headers.append(("Retry-After", "120"))
            return Case(format: "csv", response: x, retryable: true, says: "120 秒后重试")
        case .noAnswer: var x = r(csv, "text/csv"); x.silence = 5; return Case(format: "csv", response: x, retryable: true, says: "超时")
        case .stallMidBody: var x = r(csv, "text/csv"); x.stallAfter = 300; x.stallSeconds = 5; return Case(format: "csv", response: x, retryable: true, says: "超时")
        case .resetMidBody: var x = r(csv, "text/csv"); x.resetAfter = 300; return Case(format: "csv", response: x, retryable: true, says: "libcurl")
        case .truncatedCSV: var x = r(csv, "text/csv"); x.truncateAt = 500; return Case(format: "csv", response: x, retryable: true, says: "不完整")
        case .truncatedJSON: var x = r(json, "application/json"); x.truncateAt = 700; return Case(format: "json", response: x, retryable: true, says: "不完整")
        case .truncatedXML: var x = r(xml, "application/xml"); x.truncateAt = 900; return Case(format: "xml", response: x, retryable: true, says: "不完整")
        case .brokenJSON: return Case(format: "json", response: r(String(json.prefix(700)), "application/json"), retryable: false, says: "JSON 文档不完整")
        case .brokenXML: return Case(format: "xml", response: r(String(xml.prefix(900)), "application/xml"), retryable: false, says: "XML")
        case .htmlInsteadOfJSON: return Case(format: "json", response: r("<html><body>系统维护</body></html>", "text/html"), retryable: false, says: "JSON 格式错误")
        case .endless: var x = r(csv, "text/csv"); x.endless = true; return Case(format: "csv", response: x, retryable: false, says: "max_bytes")
        }
    }

    static func mapping(_ format: String, url: String) -> String {
        let formatPart: String
        let fields: String
        switch format {
        case "json":
            formatPart = "format: json\njson: { records_at: data.list }"
            fields = "{ settlement_id: id, id_number: sfzh, settled_at: t, total_cost: c }"
        case "xml":
            formatPart = "format: xml\nxml: { record: Claim }"
            fields = "{ settlement_id: Id, id_number: IdNo, settled_at: T, total_cost: C }"
        default:
            formatPart = "format: csv"
            fields = "{ settlement_id: 结算ID, id_number: 身份证号, settled_at: 结算时间, total_cost: 医疗费总额 }"
        }
        return """
        source: feed
        connector: http
        fetch: { url: "\(url)", timeout: 3, connect_timeout: 2, stall_timeout: 1, max_bytes: 2000000 }
        \(formatPart)
        record: medical_claim
        fields: \(fields)
        """
    }

    @Test(arguments: Fault.allCases)
    func aFaultGivesAClearErrorAndLeavesTheStoreAsItWas(_ fault: Fault) throws {
        let sc = Self.scenario(fault)
        let good: LoopbackHTTPServer.Response = {
            switch sc.format {
            case "json": return .text(Self.json, contentType: "application/json")
            case "xml": return .text(Self.xml, contentType: "application/xml")
            default: return .text(Self.csv, contentType: "text/csv")
            }
        }()
        let broken = Locked(false)
        let server = try LoopbackHTTPServer { _ in broken.value ? sc.response : good }
        defer { server.stop() }
        let dir = scratchDirectory("fault")
        let m = try loader().load(text: Self.mapping(sc.format, url: server.baseURL + "/feed"), file: "feed.yaml", directory: dir.path)
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let pull = Pull(mapping: m, connector: try loader().connector(for: m), store: store)
        #expect(try pull.run(period: Period("2026-10")!).counts.inserted == 40)
        let before = try store.records(of: shippedTypes["medical_claim"]!, source: nil)
        let quarantineBefore = try store.query("SELECT count(*) AS n FROM quarantine").first?["n"]
        broken.value = true
        let started = Date()
        #expect {
            _ = try pull.run(period: Period("2026-10")!)
        } throws: { e in
            guard let e = e as? PullError else { return false }
            #expect(e.message.contains(sc.says), "\(fault): \(e.message)")
            #expect(e.retryable == sc.retryable, "\(fault): retryable \(e.retryable)")
            if fault == .status503RetryAfter { #expect(e.retryAfter == 120) }
            return true
        }
        #expect(Date().timeIntervalSince(started) < 10, "\(fault) took too long")
        #expect(try store.records(of: shippedTypes["medical_claim"]!, source: nil) == before, "\(fault) changed the store")
        #expect(try store.query("SELECT count(*) AS n FROM quarantine").first?["n"] == quarantineBefore)
        #expect(try store.runs(source: "feed", limit: 1).first?.status == .failed)
    }

    /// A 10.5 MB field goes all the way into the store, and costs a `hubd pull` (a child process,
    /// its peak memory measured by the kernel) a few copies of itself, not more: the same pull
    /// with a short field is the baseline.
    @Test func aSingleTenMegabyteFieldIsHandledInBoundedMemory() throws {
        let hubd = repoRoot.appendingPathComponent(".build/debug/hubd").path
        try #require(FileManager.default.isExecutableFile(atPath: hubd), "build hubd first (swift build)")
        let big = String(repeating: "长", count: 3_500_000)   // 10.5 MB of UTF-8
        let remark = Locked("")
        let server = try LoopbackHTTPServer { _ in
            .text("结算ID,身份证号,结算时间,医疗费总额,备注\nS1,\(makeID("411081", "19600101", 1)),2026-10-01 10:00:00,60000,\"\(remark.value)\"\n"
                  + "S2,\(makeID("411081", "19600101", 2)),2026-10-01 10:00:00,60000,短\n", contentType: "text/csv")
        }
        defer { server.stop() }
        let dir = scratchDirectory("big")
        let m = dir.appendingPathComponent("Mappings")
        try FileManager.default.createDirectory(at: m, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repoRoot.appendingPathComponent("Mappings/types"), to: m.appendingPathComponent("types"))
        try """
        source: feed
        connector: http
        fetch: { url: "\(server.baseURL)/feed", max_bytes: 50000000 }
        format: csv
        record: medical_claim
        fields: { settlement_id: 结算ID, id_number: 身份证号, settled_at: 结算时间, total_cost: 医疗费总额, hospital: 备注 }
        """.write(to: m.appendingPathComponent("feed.yaml"), atomically: true, encoding: .utf8)
        func pull(_ text: String, _ db: String) throws -> Int {
            remark.value = text
            let r = try runMeasuringPeak(hubd, ["pull", "feed", "--period", "2026-10", "--db", dir.appendingPathComponent(db).path,
                                                "--mappings", m.path, "--skip-rules"])
            #expect(r.status == 0, "hubd pull exited with \(r.status)")
            return r.peakKB
        }
        let baseline = try pull("短", "small.sqlite")
        let peak = try pull(big, "big.sqlite")
        let store = try SQLiteStore(path: dir.appendingPathComponent("big.sqlite").path)
        let stored = try store.records(of: shippedTypes["medical_claim"]!, source: "feed")
        #expect(stored.count == 2 && stored.contains { $0["hospital"]?.description.count == 3_500_000 }, "the whole field is stored")
        let fieldKB = big.utf8.count / 1024
        FileHandle.standardError.write(Data("10.5 MB field: peak \(peak / 1024) MB against \(baseline / 1024) MB with a short one (+\((peak - baseline) / 1024) MB)\n".utf8))
        #expect(peak - baseline < 6 * fieldKB, "a 10.5 MB field cost \((peak - baseline) / 1024) MB more than a short one")
    }

}
