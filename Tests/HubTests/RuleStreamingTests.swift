import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
import SimCounty

/// Rule evaluation walks the store a chunk of subjects at a time while a second thread stores
/// the alerts: the chunking must not change what is raised, withdrawing must spare worked
/// cases, and a failure half-way must store nothing.
@Suite(.serialized) struct RuleStreamingTests {
    static func sorted(_ alerts: [Alert]) -> [Alert] {
        alerts.sorted { ($0.rule, $0.subjectID) < ($1.rule, $1.subjectID) }
    }

    @Test func theChunkSizeDoesNotChangeWhatIsRaised() throws {
        let county = try RulesTests.pulledCounty()
        let period = county.sim.county.config.period
        let whole = try county.engine()
        whole.chunkSize = 1_000_000
        whole.chunkRecords = Int.max
        let (expected, expectedEvaluated) = try whole.evaluateScoped(period: period)
        #expect(Set(expected.map(\.rule)) == Set(county.rules.map(\.name)), "every rule raises something in the simulated county")
        for (size, records) in [(1, 10_000), (7, 10_000), (500, 10_000), (2_000, 5)] {
            let engine = try county.engine()
            engine.chunkSize = size
            engine.chunkRecords = records
            var chunks = 0
            var seen: [String: Set<String>] = [:]
            var alerts: [Alert] = []
            try engine.evaluate(period: period) { chunk in
                chunks += 1
                #expect(chunk.evaluated.count <= size)
                // A rule's chunks never share a subject.
                #expect(seen[chunk.rule, default: []].isDisjoint(with: chunk.evaluated))
                seen[chunk.rule, default: []].formUnion(chunk.evaluated)
                alerts += chunk.alerts
            }
            #expect(Self.sorted(alerts) == Self.sorted(expected), "chunk size \(size), \(records) records")
            #expect(seen.filter { !$0.value.isEmpty } == expectedEvaluated.filter { !$0.value.isEmpty }, "chunk size \(size), \(records) records")
            // Small chunks by subjects or by records: many of them.
            if size == 7 || records == 5 { #expect(chunks > county.rules.count * 3) }
        }
    }

    @Test func anAlertThatNoLongerHoldsIsWithdrawnUnlessSomeoneWorkedOnIt() throws {
        let county = try RulesTests.pulledCounty()
        let period = county.sim.county.config.period
        let raised = try county.engine().evaluate(period: period).count
        let first = try county.engine().evaluateAndStore(period: period, into: county.store)
        #expect(first.totals.newAlerts == raised && first.totals.alerts == raised && first.totals.withdrawn == 0)
        // roster_stale alerts, with how many other alerts share their case.
        let stale = try county.store.query("""
            SELECT subject_id, case_id, (SELECT count(*) FROM alerts b WHERE b.case_id = a.case_id) - 1 AS others
            FROM alerts a WHERE rule = 'roster_stale' ORDER BY others DESC, subject_id
            """)
        try #require(stale.count >= 2)
        let (worked, unworked) = (stale[0], stale[1])
        // A verifier has started on one household's case; then the roster is corrected for it
        // and for another: both were updated last month after all.
        try county.store.unsafeExecuteForTests("""
            INSERT INTO case_events (case_id, at, username, action, detail) VALUES (\(Int64(worked["case_id"]!)!), '2026-10-30T09:00:00+08:00', 'zhang', 'note', '已电话联系');
            UPDATE rec_household SET updated_on = '2026-09-30' WHERE household_id IN ('\(worked["subject_id"]!)', '\(unworked["subject_id"]!)');
            """)
        let second = try county.engine().evaluateAndStore(period: period, into: county.store)
        #expect(second.totals.withdrawn == 1 && second.totals.newAlerts == 0 && second.totals.alerts == raised - 2)
        let left = Set(try county.store.query("SELECT subject_id FROM alerts WHERE rule = 'roster_stale'").map { $0["subject_id"]! })
        #expect(left.contains(worked["subject_id"]!), "a case someone worked on keeps its alert")
        #expect(!left.contains(unworked["subject_id"]!), "an unworked alert that no longer holds is withdrawn")
        #expect(left.count == stale.count - 1)
        // Its case is gone with it, unless other alerts of the household are in it.
        let caseLeft = try county.store.query("SELECT id FROM cases WHERE id = ?", [unworked["case_id"]!])
        #expect(caseLeft.isEmpty == (unworked["others"] == "0"))
        // Evaluating again changes nothing.
        let third = try county.engine().evaluateAndStore(period: period, into: county.store)
        #expect(third.totals.withdrawn == 0 && third.totals.newAlerts == 0 && third.totals.updated == 0)
    }

    @Test func aFailureHalfWayThroughStoresNothing() throws {
        let county = try RulesTests.pulledCounty()
        let period = county.sim.county.config.period
        let run = county.runs["medical-claims"]!
        let failing = FailingStore(county.store, failAfter: 40)
        let engine = try RuleEngine(rules: county.rules, params: county.params, types: shippedTypes, store: failing)
        engine.chunkSize = 50
        #expect(throws: FailingStore.Failure.self) {
            try engine.evaluateAndStore(period: period, into: county.store, evaluatedRun: run)
        }
        #expect(failing.lookups > 40, "the evaluation got some way before it failed")
        #expect(try county.store.query("SELECT count(*) AS n FROM alerts").first?["n"] == "0")
        #expect(try county.store.query("SELECT count(*) AS n FROM cases").first?["n"] == "0")
        #expect(try county.store.query("SELECT rules_evaluated FROM runs WHERE id = ?", [String(run)]).first?["rules_evaluated"] == "0")
        // The same evaluation without the failure stores everything.
        let ok = try county.engine().evaluateAndStore(period: period, into: county.store, evaluatedRun: run)
        #expect(ok.totals.newAlerts == (try county.engine().evaluate(period: period).count) && ok.totals.newAlerts > 0)
        #expect(try county.store.query("SELECT rules_evaluated FROM runs WHERE id = ?", [String(run)]).first?["rules_evaluated"] == "1")
    }
}

/// A store whose record lookups fail after a number of them (a disk error, say).
final class FailingStore: RuleReadingStore, @unchecked Sendable {
    struct Failure: Error {}
    let base: SQLiteStore
    let failAfter: Int
    private(set) var lookups = 0
    init(_ base: SQLiteStore, failAfter: Int) { self.base = base; self.failAfter = failAfter }

    final class Reader: RecordReader {
        let base: any RecordReader
        let owner: FailingStore
        init(_ base: any RecordReader, _ owner: FailingStore) { self.base = base; self.owner = owner }
        func count() throws {
            owner.lookups += 1
            if owner.lookups > owner.failAfter { throw Failure() }
        }
        func scan(_ type: RecordType, fields: [String], where filter: RecordFilter?, orderBy: [String], _ body: ([String: Value]) throws -> Bool) throws {
            try base.scan(type, fields: fields, where: filter, orderBy: orderBy, body)
        }
        func records(of type: RecordType, fields: [String], whereField field: String, in values: [String], and filter: RecordFilter?) throws -> [[String: Value]] {
            try count()
            return try base.records(of: type, fields: fields, whereField: field, in: values, and: filter)
        }
        func distinctCounts(of type: RecordType, distinct: String, by field: String, in values: [String]) throws -> [String: Int] {
            try base.distinctCounts(of: type, distinct: distinct, by: field, in: values)
        }
    }

    func reading<T>(_ body: (any RecordReader) throws -> T) throws -> T { try base.reading { try body(Reader($0, self)) } }
}
