import Foundation
import Testing
import Hub
import HubSQLite
import SimCounty

/// A city of several simulated counties (`hubd demo --counties N`): each department delivers one
/// export for the whole city, the shipped mappings read it unchanged, and the cases fall to the
/// counties they belong to.
@Suite struct CityTests {
    @Test func aCityOfThreeCountiesIsPulledWithTheShippedMappingsAndEachCountySeesItsOwnCases() throws {
        let configs = CountyConfig.city(counties: 3).map { c -> CountyConfig in var c = c; c.scale = 0.02; return c }
        #expect(Set(configs.map(\.countyCode)).count == 3 && configs[0].countyCode == "411081")
        let sim = try Simulator(counties: configs)
        let dir = scratchDirectory("city")
        try sim.write(to: dir)
        try sim.start()
        defer { sim.stop() }
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let mdir = repoRoot.appendingPathComponent("Mappings")
        let period = configs[0].period
        for f in try FileManager.default.contentsOfDirectory(atPath: mdir.path).filter({ $0.hasSuffix(".yaml") }).sorted() {
            let m = try loader().load(file: mdir.appendingPathComponent(f))
            let r = try Pull(mapping: m, connector: try loader().connector(for: m), store: store)
                .run(period: period, environment: sim.environment(dropDirectory: dir))
            let expected = try #require(sim.truth.feeds[m.source], "\(m.source) in the truth")
            #expect(r.counts.read == expected.rows && r.counts.quarantined == expected.bad, "\(m.source): read \(r.counts.read) of \(expected.rows), kept aside \(r.counts.quarantined) of \(expected.bad)")
            for o in m.outputs {
                #expect(try store.recordCount(of: o.type, source: m.source) == expected.records[o.type.name], "\(m.source) → \(o.type.name)")
            }
        }
        // The city's roster holds every county's households, none twice.
        let households = try store.query("SELECT substr(household_id, 1, 6) AS county, count(*) AS n FROM rec_household GROUP BY 1 ORDER BY 1")
        #expect(households.map { $0["county"] ?? "" } == configs.map(\.countyCode).sorted(), "\(households)")
        // Every planted case of every county found, no look-alike flagged.
        let (rules, params, problems) = RuleLoader.loadDirectory(mdir.appendingPathComponent("rules"), types: shippedTypes)
        #expect(problems.isEmpty)
        let alerts = try RuleEngine(rules: rules, params: params, types: shippedTypes, store: store).evaluate(period: period)
        let score = RuleScore(alerts: alerts, planted: sim.truth.planted, negatives: sim.truth.negatives)
        for l in score.lines {
            #expect(l.found == l.planted && l.planted > 0, "\(l.rule): found \(l.found) of \(l.planted)")
            #expect(l.negativesFlagged == 0 && l.alerts == l.alertsOnPlanted, "\(l.rule): \(l.negativesFlagged) look-alikes, \(l.alerts - l.alertsOnPlanted) others")
        }
        try store.saveAlerts(alerts)
        // Each county's analyst sees that county's cases; the city's sees them all.
        let city = try store.addUser(NewUser(username: "city", displayName: "市", role: .analyst, townships: []), passwordHash: "x")
        var everything = CaseFilter(); everything.limit = CaseFilter.maxLimit
        let total = try store.caseCount(for: city, filter: everything, today: .today)
        var queue = CaseFilter(); queue.awaitingDispatch = true
        var sum = try store.caseCount(for: city, filter: queue, today: .today)
        for c in configs {
            let analyst = try store.addUser(NewUser(username: "a" + c.countyCode, displayName: c.countyName, role: .analyst, townships: [c.countyCode]), passwordHash: "x")
            let n = try store.caseCount(for: analyst, filter: everything, today: .today)
            let page = try store.cases(for: analyst, filter: everything, today: .today)
            #expect(n > 0 && page.allSatisfy { $0.townshipCode?.hasPrefix(c.countyCode) == true }, "\(c.countyName): \(n) cases, all its own")
            sum += n
        }
        #expect(sum == total, "the counties' cases and the queue make up the city: \(sum) of \(total)")
    }
}
