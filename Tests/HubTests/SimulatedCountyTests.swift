import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
import Connectors
import SimCounty

/// Every shipped mapping against the simulated county's feeds, served over real HTTP on
/// 127.0.0.1 and a real file drop, into a real SQLite file, checked against the ground truth.
@Suite(.serialized) struct SimulatedCountyTests {
    static let scale = 0.03

    @Test func aFullMonthStoresEveryGoodRowAndQuarantinesEveryPlantedBadRow() throws {
        var config = CountyConfig()
        config.scale = Self.scale
        let sim = try Simulator(config: config)
        let dir = scratchDirectory("county")
        try sim.write(to: dir)
        try sim.start()
        defer { sim.stop() }
        let truth = try JSONDecoder().decode(GroundTruth.self, from: Data(contentsOf: dir.appendingPathComponent("ground-truth.json")))
        #expect(truth.townships == 22)
        #expect(truth.planted.keys.count == 13)   // every alert family has planted cases…
        #expect(truth.negatives.keys.count == 13) // …and look-alikes that must not alert

        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let mappingsDir = repoRoot.appendingPathComponent("Mappings")
        let files = try FileManager.default.contentsOfDirectory(atPath: mappingsDir.path).filter { $0.hasSuffix(".yaml") }.sorted()
        var env = ProcessInfo.processInfo.environment
        for (k, v) in sim.environment(dropDirectory: dir) { env[k] = v }
        var pulled = Set<String>()
        for f in files {
            let m = try loader().load(file: mappingsDir.appendingPathComponent(f))
            let r = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: config.period, environment: env)
            let expected = try #require(truth.feeds[m.source], "no ground truth for \(m.source)")
            #expect(r.counts.read == expected.rows, "\(m.source) rows")
            #expect(r.counts.quarantined == expected.bad, "\(m.source) quarantined")
            for o in m.outputs {
                #expect(try store.recordCount(of: o.type, source: m.source) == expected.records[o.type.name], "\(m.source) \(o.type.name)")
            }
            // Each planted bad row is in quarantine with the reason it was planted for.
            let q = try store.quarantine(runID: r.runID)
            for b in truth.badRows where b.source == m.source {
                let hit = q.first { e in e.raw.contains { $0.last?.contains(b.marker) == true } }
                #expect(hit != nil, "\(m.source): bad row \(b.marker) not quarantined")
                #expect(hit?.reasons.contains { $0.message.contains(b.reason) } == true, "\(m.source): \(b.marker) reason \(hit?.reasons.map(\.text) ?? [])")
            }
            pulled.insert(m.source)
        }
        #expect(pulled == Set(truth.feeds.keys))

        // Cross-feed joins hold: every 民政 ID in the roster is normalised to 18 digits.
        let dibao = try store.records(of: shippedTypes["assistance_enrollment"]!, source: "minzheng")
        #expect(dibao.allSatisfy { $0["id_number"]?.description.count == 18 })
        // The planted 应纳未纳 households really are below the threshold in the store.
        let households = try store.records(of: shippedTypes["household"]!, source: "roster")
        for id in truth.planted["income_below_unmonitored"]! {
            let h = try #require(households.first { $0["household_id"] == .text(id) })
            #expect((h["income_per_person"]?.number ?? 1e9) < Double(truth.threshold))
        }
    }

    @Test func theSameSeedGivesTheSameCounty() throws {
        var c = CountyConfig(); c.scale = 0.01
        let a = try Simulator(config: c), b = try Simulator(config: c)
        #expect(a.feeds.map(\.bytes.count) == b.feeds.map(\.bytes.count))
        #expect(a.feeds.filter { $0.source != "roster" }.map(\.bytes) == b.feeds.filter { $0.source != "roster" }.map(\.bytes))
        #expect(a.truth.planted == b.truth.planted)
        c.seed = 7
        #expect(try Simulator(config: c).truth.planted != a.truth.planted)
    }

    @Test func theMinzhengAPIWantsItsToken() throws {
        var c = CountyConfig(); c.scale = 0.01
        let sim = try Simulator(config: c)
        try sim.start()
        defer { sim.stop() }
        let m = try loader().load(file: repoRoot.appendingPathComponent("Mappings/minzheng.yaml"))
        var env = sim.environment(dropDirectory: scratchDirectory())
        env["MINZHENG_TOKEN"] = "wrong"
        let store = try SQLiteStore(path: scratchDirectory().appendingPathComponent("h.sqlite").path)
        #expect {
            _ = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: c.period, environment: env)
        } throws: { e in
            let msg = (e as? PullError)?.message ?? ""
            return msg.contains("HTTP 401") && !msg.contains("wrong")
        }
    }
}
