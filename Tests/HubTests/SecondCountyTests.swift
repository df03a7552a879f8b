import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
import Connectors
import SimCounty

/// The second simulated county (鄢陵县): feeds in shapes of their own, pulled through the
/// example mappings in `Mappings/examples/yanling/` — written as an operator would, with the
/// shipped record types and rules — over real HTTP on 127.0.0.1 into a real SQLite file.
@Suite(.serialized) struct SecondCountyTests {
    static let mappings = repoRoot.appendingPathComponent("Mappings/examples/yanling")

    struct Pulled {
        let sim: Simulator
        let store: SQLiteStore
        let mappings: [Mapping]
        let results: [String: PullResult]
        let rules: [Rule]
        let params: RuleParams
    }

    static func pulled(seed: UInt64 = 20261002) throws -> Pulled {
        var config = CountyConfig.yanling()
        config.scale = 0.03
        config.seed = seed
        let sim = try Simulator(config: config)
        let dir = scratchDirectory("yanling")
        try sim.start()
        defer { sim.stop() }
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let types = try TypeCatalog.load(directory: MappingsFolder.types(of: mappings))
        let loader = MappingLoader(types: types, connectors: BuiltinConnectors.registry)
        var loaded: [Mapping] = []
        var results: [String: PullResult] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: mappings.path).filter({ $0.hasSuffix(".yaml") }).sorted() {
            let m = try loader.load(file: mappings.appendingPathComponent(f))
            loaded.append(m)
            results[m.source] = try Pull(mapping: m, connector: try loader.connector(for: m), store: store)
                .run(period: config.period, environment: sim.environment(dropDirectory: dir))
        }
        let (rules, params, problems) = RuleLoader.loadDirectory(MappingsFolder.rules(of: mappings), types: types)
        #expect(problems.isEmpty, "\(problems)")
        return Pulled(sim: sim, store: store, mappings: loaded, results: results, rules: rules, params: params)
    }

    @Test func everyFeedPullsAndOnlyThePlantedBadRowsAreQuarantined() throws {
        let p = try Self.pulled()
        let truth = p.sim.truth
        #expect(Set(p.results.keys) == Set(truth.feeds.keys))
        for m in p.mappings {
            let r = try #require(p.results[m.source])
            let expected = try #require(truth.feeds[m.source])
            #expect(r.counts.read == expected.rows, "\(m.source) rows \(r.counts)")
            let reasons = try p.store.quarantine(runID: r.runID).map { $0.reasons.map(\.text) }
            #expect(r.counts.quarantined == expected.bad, "\(m.source) quarantined \(r.counts.quarantined), expected \(expected.bad): \(reasons)")
            for o in m.outputs {
                #expect(try p.store.recordCount(of: o.type, source: m.source) == expected.records[o.type.name], "\(m.source) \(o.type.name) \(r.counts)")
            }
            let q = try p.store.quarantine(runID: r.runID)
            for b in truth.badRows where b.source == m.source {
                let hit = q.first { e in e.raw.contains { $0.last?.contains(b.marker) == true } }
                #expect(hit?.reasons.contains { $0.message.contains(b.reason) } == true, "\(m.source): \(b.marker) \(b.reason): \(hit?.reasons.map(\.text) ?? ["not quarantined"])")
            }
        }
        // The person listed in two households: a data-quality alert for the roster's run.
        let roster = try #require(p.results["roster"])
        let mapping = try #require(p.mappings.first { $0.source == "roster" })
        #expect(roster.conflicts.map(\.type) == ["person"])
        #expect(roster.conflictMessage(mapping)?.contains("家庭成员 1 行") == true, "\(roster.conflictMessage(mapping) ?? "")")
        // Status came from the other columns, by the mapping's expression.
        let households = try p.store.records(of: shippedTypes["household"]!, source: "roster")
        #expect(Set(households.compactMap { $0["monitoring_status"]?.description }) == ["未纳入", "监测中", "风险已消除"])
        // Offsets: a certificate issued at 16:30 UTC on the evening before is dated the next day.
        let certs = try p.store.records(of: shippedTypes["disability_certificate"]!, source: "canlian")
        let first = p.sim.county.config.period.firstDay
        #expect(certs.contains { $0["issued_on"] == .date(first) }, "issued \(first.adding(days: -1))T16:30:00Z is \(first) in county time")
        #expect(certs.allSatisfy { $0["issued_on"] != nil })
    }

    @Test(arguments: [20261002, 7] as [UInt64])
    func everyPlantedCaseThatCanFireIsFoundNoLookAlikeIsAndTheRestAreNamedAsUnableToFire(seed: UInt64) throws {
        let p = try Self.pulled(seed: seed)
        let truth = p.sim.truth
        // What cannot fire here is said, rule by rule, and is exactly what the county lacks.
        let gaps = RuleCoverage.gaps(rules: p.rules, mappings: p.mappings, types: try TypeCatalog.load(directory: MappingsFolder.types(of: Self.mappings)))
        #expect(Set(gaps.map(\.rule)) == Set(truth.blind?.keys.map { $0 } ?? []), "\(RuleCoverage.describe(gaps))")
        let engine = try RuleEngine(rules: p.rules, params: p.params, types: shippedTypes, store: p.store)
        let period = p.sim.county.config.period
        let alerts = try engine.evaluate(period: period)
        let score = RuleScore(alerts: alerts, planted: truth.planted, negatives: truth.negatives)
        for l in score.lines where truth.blind?[l.rule] == nil {
            #expect(l.planted > 0, "\(l.rule) has no planted case")
            #expect(l.found == l.planted, "\(l.rule): found \(l.found) of \(l.planted)")
            #expect(l.negativesFlagged == 0, "\(l.rule): \(l.negativesFlagged) look-alikes flagged")
            #expect(l.alerts == l.alertsOnPlanted, "\(l.rule): \(l.alerts - l.alertsOnPlanted) alerts on unplanted subjects")
        }
        // The outage still going on is among those found.
        #expect(alerts.contains { $0.rule == "water_outage" && $0.subjectID == truth.planted["water_outage"]?.first })

        // No case is beyond everyone's reach: each is in a township's inbox or the county's
        // dispatch queue, and the county can send every queued one to a township.
        try p.store.saveAlerts(alerts)
        let analyst = try p.store.addUser(NewUser(username: "an", displayName: "分析员", role: .analyst, townships: []), passwordHash: "unused")
        var all = CaseFilter(); all.limit = CaseFilter.maxLimit
        let cases = try p.store.cases(for: analyst, filter: all, today: .today)
        var queue = all; queue.awaitingDispatch = true
        let waiting = try p.store.cases(for: analyst, filter: queue, today: .today)
        #expect(!waiting.isEmpty, "people outside the roster in feeds without a region wait for the county")
        #expect(waiting.allSatisfy { $0.householdID == nil })
        #expect(cases.filter { ($0.townshipCode ?? "").isEmpty }.count == waiting.count)
        let townships = Set(cases.compactMap(\.townshipCode).filter { !$0.isEmpty })
        for t in townships {
            let verifier = User(id: 0, username: "v\(t)", displayName: "", role: .verifier, townships: [t])
            #expect(try p.store.caseCount(for: verifier, filter: CaseFilter(), today: .today) == cases.filter { $0.townshipCode == t }.count)
        }
        let target = try #require(townships.sorted().first)
        let failed = try p.store.dispatch(caseIDs: waiting.map(\.id), to: target, townshipName: "某乡", by: analyst)
        #expect(failed.isEmpty)
        #expect(try p.store.caseCount(for: analyst, filter: queue, today: .today) == 0)
    }
}
