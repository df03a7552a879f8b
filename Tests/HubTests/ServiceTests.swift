import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
@testable import HubWeb
import SimCounty
#if canImport(Glibc)
import Glibc
#endif

/// A minimal Prometheus text-format (0.0.4) parser: every line must be a HELP or TYPE comment
/// or a sample of a declared family; returns the samples.
enum PrometheusText {
    struct Sample: Hashable { var name: String; var labels: [String: String]; var value: Double }
    struct Invalid: Error, CustomStringConvertible { var description: String }

    static func parse(_ text: String) throws -> [Sample] {
        var types: [String: String] = [:]
        var samples: [Sample] = []
        let name = try NSRegularExpression(pattern: "^[a-zA-Z_:][a-zA-Z0-9_:]*$")
        func isName(_ s: String) -> Bool { name.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil }
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            if line.hasPrefix("# HELP ") { continue }
            if line.hasPrefix("# TYPE ") {
                let p = line.split(separator: " ")
                guard p.count == 4, isName(String(p[2])), ["counter", "gauge", "histogram", "summary", "untyped"].contains(String(p[3])) else {
                    throw Invalid(description: "line \(n + 1): bad TYPE: \(line)")
                }
                types[String(p[2])] = String(p[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            var rest = Substring(line)
            let metric = String(rest.prefix { $0 != "{" && $0 != " " })
            guard isName(metric), types[metric] != nil else { throw Invalid(description: "line \(n + 1): sample of undeclared family: \(line)") }
            rest = rest.dropFirst(metric.count)
            var labels: [String: String] = [:]
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    let key = String(rest.prefix { $0 != "=" })
                    guard isName(key) else { throw Invalid(description: "line \(n + 1): bad label name") }
                    rest = rest.dropFirst(key.count)
                    guard rest.hasPrefix("=\"") else { throw Invalid(description: "line \(n + 1): label without quoted value") }
                    rest = rest.dropFirst(2)
                    var value = ""
                    while let c = rest.first, c != "\"" {
                        if c == "\\" { rest = rest.dropFirst(); value.append(rest.first == "n" ? "\n" : rest.first ?? "\\") } else { value.append(c) }
                        rest = rest.dropFirst()
                    }
                    guard rest.first == "\"" else { throw Invalid(description: "line \(n + 1): unterminated label value") }
                    rest = rest.dropFirst()
                    labels[key] = value
                    if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" { throw Invalid(description: "line \(n + 1): expected , or }") }
                }
                rest = rest.dropFirst()
            }
            guard rest.first == " ", let v = Double(rest.dropFirst()) else { throw Invalid(description: "line \(n + 1): bad value: \(line)") }
            samples.append(Sample(name: metric, labels: labels, value: v))
        }
        return samples
    }
}

/// `hubd serve` as a real process: SIGTERM in the middle of a pull, then a restart.
@Suite(.serialized) struct ServiceTests {
    static var hubd: URL { repoRoot.appendingPathComponent(".build/debug/hubd") }
    static let rows = 3000

    func freePort() throws -> Int {
        let probe = try LoopbackHTTPServer { _ in .text("") }
        defer { probe.stop() }
        return probe.port
    }

    @Test func sigtermMidPullRollsBackAndTheNextStartCompletesTheRun() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.hubd.path), "build hubd first (swift build)")
        let slow = Locked(false)
        slow.value = true
        let csv = "结算ID,身份证号,结算时间,医疗费总额\n" + (0..<Self.rows).map { "S\($0),\(makeID("411081", "19600101", $0 % 900 + 1)),2026-10-01 10:00:00,\(50000 + $0)" }.joined(separator: "\n") + "\n"
        let feedServer = try LoopbackHTTPServer { _ in
            LoopbackHTTPServer.Response(status: 200, headers: [("Content-Type", "text/csv")], body: Array(csv.utf8), chunked: true,
                                        chunkDelay: slow.value ? 0.05 : 0, chunkSize: 4096)
        }
        defer { feedServer.stop() }
        let dir = scratchDirectory("serve")
        let m = dir.appendingPathComponent("Mappings")
        try FileManager.default.createDirectory(at: m, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repoRoot.appendingPathComponent("Mappings/types"), to: m.appendingPathComponent("types"))
        try """
        source: slow
        connector: http
        fetch: { url: "\(feedServer.baseURL)/feed.csv" }
        format: csv
        schedule: daily at 00:00
        record: medical_claim
        fields: { settlement_id: 结算ID, id_number: 身份证号, settled_at: 结算时间, total_cost: 医疗费总额 }
        """.write(to: m.appendingPathComponent("slow.yaml"), atomically: true, encoding: .utf8)
        let port = try freePort()
        let db = dir.appendingPathComponent("hub.sqlite").path
        try """
        database: \(db)
        mappings: \(m.path)
        web: { port: \(port) }
        scheduler: { check_every_seconds: 1 }
        """.write(to: dir.appendingPathComponent("hub.yaml"), atomically: true, encoding: .utf8)

        /// A started `hubd serve` and a semaphore signalled when it exits.
        func start() throws -> (process: Process, exited: DispatchSemaphore) {
            let p = Process()
            p.executableURL = Self.hubd
            p.arguments = ["serve", "--config", dir.appendingPathComponent("hub.yaml").path]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            let exited = DispatchSemaphore(value: 0)
            p.terminationHandler = { _ in exited.signal() }
            try p.run()
            return (p, exited)
        }
        func wait(_ seconds: Double, _ cond: () throws -> Bool) throws -> Bool {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end { if try cond() { return true }; Thread.sleep(forTimeInterval: 0.05) }
            return false
        }
        let store = try SQLiteStore(path: db)
        let type = shippedTypes["medical_claim"]!

        // First start: the pull begins, streaming slowly; SIGTERM arrives in the middle.
        let (first, firstExited) = try start()
        #expect(try wait(20) { try store.runs(source: "slow", limit: 1).first?.status == .running })
        // The department's server has the request: the body is streaming (slowly) now.
        #expect(try wait(20) { !feedServer.requestLog.isEmpty })
        kill(first.processIdentifier, SIGTERM)
        #expect(firstExited.wait(timeout: .now() + 30) == .success)
        #expect(first.terminationStatus == 0, "hubd should exit cleanly on SIGTERM")
        let interrupted = try #require(try store.runs(source: "slow", limit: 1).first)
        #expect(interrupted.status == .failed && interrupted.error?.contains("回滚") == true)
        #expect(try store.recordCount(of: type, source: "slow") == 0)   // nothing half-applied

        // Second start: the owed slot runs again, completely.
        slow.value = false
        let (second, secondExited) = try start()
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        #expect(try wait(30) { try store.runs(source: "slow", limit: 1).first?.status == .succeeded })
        #expect(try store.recordCount(of: type, source: "slow") == Self.rows)
        let keys = Set(try store.records(of: type, source: "slow").compactMap { $0["settlement_id"]?.description })
        #expect(keys.count == Self.rows)

        // The running service's /metrics parses as Prometheus text and tells the story.
        var http = TestHTTP(port: port)
        let metrics = try http.request("GET", "/metrics")
        #expect(metrics.status == 200 && metrics.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let samples = try PrometheusText.parse(metrics.text)
        #expect(samples.contains { $0.name == "hub_runs_total" && $0.labels == ["source": "slow", "status": "succeeded"] && $0.value == 1 })
        #expect(samples.contains { $0.name == "hub_runs_total" && $0.labels == ["source": "slow", "status": "failed"] && $0.value == 1 })
        #expect(samples.contains { $0.name == "hub_rows_stored_total" && $0.labels["source"] == "slow" && $0.value == Double(Self.rows) })
        #expect(try http.request("GET", "/healthz").status == 200)
        #expect(try http.request("GET", "/readyz").status == 200)
        kill(second.processIdentifier, SIGTERM)
        #expect(secondExited.wait(timeout: .now() + 30) == .success)
        #expect(second.terminationStatus == 0)
    }

    /// The README's walkthrough of the service against the simulator: `hubd simulate`, its
    /// `feeds.env` exported, `hubd serve` with the shipped mappings. Whatever today's date, the
    /// months the schedules ask for are published: every source pulls, none fails or waits.
    @Test func theServiceWalkthroughAgainstTheSimulatorPullsEverySource() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.hubd.path), "build hubd first (swift build)")
        let dir = scratchDirectory("walkthrough")
        let simulate = Process()
        simulate.executableURL = Self.hubd
        simulate.currentDirectoryURL = repoRoot
        simulate.arguments = ["simulate", "--scale", "0.02", "--out", dir.appendingPathComponent("sim").path]
        simulate.standardOutput = FileHandle.nullDevice
        try simulate.run()
        defer { if simulate.isRunning { kill(simulate.processIdentifier, SIGKILL) } }
        let envFile = dir.appendingPathComponent("sim/feeds.env")
        // Generous: under the thread sanitizer the machine is busy with other suites.
        let deadline = Date().addingTimeInterval(180)
        while !FileManager.default.fileExists(atPath: envFile.path) && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        try #require(FileManager.default.fileExists(atPath: envFile.path), "hubd simulate wrote no feeds.env")
        var env = ProcessInfo.processInfo.environment
        for line in try String(contentsOf: envFile, encoding: .utf8).split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { env[kv[0]] = kv[1] }
        }
        let serve = Process()
        serve.executableURL = Self.hubd
        serve.currentDirectoryURL = repoRoot
        let db = dir.appendingPathComponent("serve.sqlite").path
        // Port 0: any free one (the walkthrough needs no page; no other test can take it meanwhile).
        serve.arguments = ["serve", "--db", db, "--port", "0"]
        serve.environment = env
        serve.standardOutput = FileHandle.nullDevice
        let log = dir.appendingPathComponent("serve.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        serve.standardError = try FileHandle(forWritingTo: log)
        try serve.run()
        defer { if serve.isRunning { kill(serve.processIdentifier, SIGKILL) } }
        let sources = try FileManager.default.contentsOfDirectory(atPath: repoRoot.appendingPathComponent("Mappings").path)
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }
        let store = try SQLiteStore(path: db)
        var runs: [RunRecord] = []
        let end = Date().addingTimeInterval(300)
        while Date() < end {
            runs = try store.runs(source: nil, limit: 100)
            if Set(runs.filter { $0.status == .succeeded }.map(\.source)) == Set(sources) { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        let tail = (try? String(contentsOf: log, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
        #expect(Set(runs.filter { $0.status == .succeeded }.map(\.source)) == Set(sources), "\(runs.map { ($0.source, $0.period, $0.status, $0.error ?? "") })\n\(tail)")
        #expect(runs.filter { $0.status == .failed }.isEmpty, "\(runs.filter { $0.status == .failed }.map { ($0.source, $0.period, $0.error ?? "") })")
        kill(serve.processIdentifier, SIGTERM)
        serve.waitUntilExit()
        kill(simulate.processIdentifier, SIGTERM)
        simulate.waitUntilExit()
    }

    /// SIGHUP reloads mappings at once: with file-change checks an hour apart, a mapping added
    /// while the service runs is not picked up until the signal comes, and then within seconds.
    @Test func sighupReloadsANewMappingAtOnce() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.hubd.path), "build hubd first (swift build)")
        let dir = scratchDirectory("hup")
        let m = dir.appendingPathComponent("Mappings")
        try FileManager.default.createDirectory(at: m, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repoRoot.appendingPathComponent("Mappings/types"), to: m.appendingPathComponent("types"))
        func mapping(_ source: String) -> String {
            """
            source: \(source)
            connector: file
            fetch: { path: "nowhere-{period}.csv" }
            format: csv
            record: medical_claim
            fields: { settlement_id: 结算ID, id_number: 身份证号, settled_at: 结算时间, total_cost: 医疗费总额 }
            """
        }
        try mapping("first").write(to: m.appendingPathComponent("first.yaml"), atomically: true, encoding: .utf8)
        try """
        database: \(dir.appendingPathComponent("hub.sqlite").path)
        mappings: \(m.path)
        web: { port: \(try freePort()) }
        scheduler: { check_every_seconds: 3600 }
        """.write(to: dir.appendingPathComponent("hub.yaml"), atomically: true, encoding: .utf8)
        let log = dir.appendingPathComponent("hubd.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let p = Process()
        p.executableURL = Self.hubd
        p.arguments = ["serve", "--config", dir.appendingPathComponent("hub.yaml").path, "--no-scheduler"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: log)
        let exited = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in exited.signal() }
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        func logged(_ text: String, within seconds: Double) -> Bool {
            let end = Date().addingTimeInterval(seconds)
            repeat {
                if (try? String(contentsOf: log, encoding: .utf8))?.contains(text) == true { return true }
                usleep(50_000)
            } while Date() < end
            return false
        }
        #expect(logged("hubd 已启动", within: 30))
        try mapping("added").write(to: m.appendingPathComponent("added.yaml"), atomically: true, encoding: .utf8)
        // Without the signal nothing picks it up (the next look is an hour away).
        #expect(!logged("\"file\":\"added.yaml\"", within: 2))
        kill(p.processIdentifier, SIGHUP)
        #expect(logged("收到 SIGHUP", within: 10))
        #expect(logged("\"file\":\"added.yaml\"", within: 10), "the new mapping is loaded after SIGHUP")
        kill(p.processIdentifier, SIGTERM)
        #expect(exited.wait(timeout: .now() + 30) == .success)
        #expect(p.terminationStatus == 0)
    }

    @Test func metricsOfAStoreParseAndAreEscaped() throws {
        let store = try SQLiteStore(path: scratchDirectory().appendingPathComponent("m.sqlite").path)
        try store.raiseFeedAlert(source: "a\"b\\c", period: "2026-10", kind: "late", message: "x")
        let samples = try PrometheusText.parse(MetricsText.render(try store.metricsSnapshot(today: .today)))
        #expect(samples.contains { $0.name == "hub_feed_alerts_total" && $0.labels["source"] == "a\"b\\c" && $0.labels["kind"] == "late" })
        #expect(throws: PrometheusText.Invalid.self) { try PrometheusText.parse("hub_x 1\n") }   // undeclared family
    }
}
