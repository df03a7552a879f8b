import Foundation
import Testing
@testable import Hub

@Suite struct RowMapperTests {
    /// A field with alternative columns names the one the document has when its value is bad
    /// or missing, not the first one the mapping lists.
    @Test func reasonsNameTheColumnActuallyPresent() throws {
        let m = try loader().load(text: """
            source: c
            connector: file
            fetch: { path: "c.csv" }
            format: csv
            record: medical_claim
            fields:
              settlement_id: 结算ID
              id_number: [身份证号, 证件号码]
              settled_at: [结算时间, 结算日期]
              total_cost: 医疗费总额
            """, file: "c.yaml")
        let mapper = RowMapper(mapping: m, period: Period("2026-10")!)
        let columns = Columns(["结算ID", "证件号码", "结算日期", "医疗费总额"], fixed: true)
        let bad = try mapper.map(RawRow(number: 2, columns: columns, values: ["S1", "411081196001010010", "2026-10-01", "60000"]), document: "c.csv")
        guard case .rejected(let why) = bad else { Issue.record("expected a rejection: \(bad)"); return }
        #expect(why.map(\.column) == ["证件号码"], "\(why.map(\.text))")
        let missing = try mapper.map(RawRow(number: 3, columns: columns, values: ["S2", nil, "2026-10-01", "60000"]), document: "c.csv")
        guard case .rejected(let why2) = missing else { Issue.record("expected a rejection: \(missing)"); return }
        #expect(why2.map(\.column) == ["证件号码"], "\(why2.map(\.text))")
    }

    /// In a `records:` list each output stands on its own: a row whose measure is missing still
    /// yields its household and person, and is quarantined for the measure; an output that its
    /// `keep_if` leaves out is skipped even when its other fields are bad.
    @Test func eachOutputOfARowIsKeptSkippedOrRefusedOnItsOwn() throws {
        let m = try loader().load(text: """
            source: roster
            connector: file
            fetch: { path: "r.csv" }
            format: csv
            records:
              - record: household
                fields: { household_id: 户编号, village_code: 村代码 }
              - record: person
                fields: { id_number: 证件号码, household_id: 户编号, name: 姓名 }
              - record: assistance_measure
                fields: { household_id: 户编号, measure: 帮扶措施, started_on: 措施开始 }
                keep_if: "not empty(measure)"
            """, file: "roster.yaml")
        let mapper = RowMapper(mapping: m, period: Period("2026-10")!)
        let columns = Columns(["户编号", "村代码", "证件号码", "姓名", "帮扶措施", "措施开始"], fixed: true)
        let id = makeID("411081", "19800101", 7)
        // A measure without its start date: the household and the person are stored, the row is quarantined for the measure.
        let partial = try mapper.map(RawRow(number: 2, columns: columns, values: ["H1", "411081100201", id, "张三", "健康帮扶", nil]), document: "r.csv")
        guard case .partial(let records, let why) = partial else { Issue.record("expected a partial row: \(partial)"); return }
        #expect(records.map(\.type.name) == ["household", "person"])
        #expect(why.count == 1 && why[0].field == "started_on" && why[0].message.hasPrefix("（帮扶措施）"), "\(why.map(\.text))")
        // No measure at all: keep_if leaves the measure out first — nothing to quarantine.
        let noMeasure = try mapper.map(RawRow(number: 3, columns: columns, values: ["H1", "411081100201", id, "张三", nil, nil]), document: "r.csv")
        guard case .records(let kept) = noMeasure else { Issue.record("expected records: \(noMeasure)"); return }
        #expect(kept.map(\.type.name) == ["household", "person"])
        // A bad ID refuses the person only.
        let badID = try mapper.map(RawRow(number: 4, columns: columns, values: ["H2", "411081100202", "411081198001010010", "李四", nil, nil]), document: "r.csv")
        guard case .partial(let hh, let why2) = badID else { Issue.record("expected a partial row: \(badID)"); return }
        #expect(hh.map(\.type.name) == ["household"] && why2.first?.field == "id_number")
    }

    /// A cell with several values gives one record per value; a bad one among them is a reason.
    @Test func splitGivesOneRecordPerValue() throws {
        let m = try loader().load(text: """
            source: measures
            connector: file
            fetch: { path: "m.csv" }
            format: csv
            record: assistance_measure
            fields:
              household_id: 户编号
              measure: { from: 帮扶措施, split: "、" }
              started_on: 开始日期
            """, file: "measures.yaml")
        let mapper = RowMapper(mapping: m, period: Period("2026-10")!)
        let columns = Columns(["户编号", "帮扶措施", "开始日期"], fixed: true)
        let r = try mapper.map(RawRow(number: 2, columns: columns, values: ["H1", "健康帮扶、产业帮扶、 就业帮扶", "2026-03-01"]), document: "m.csv")
        guard case .records(let recs) = r else { Issue.record("expected records: \(r)"); return }
        #expect(recs.map { $0.values[1].description } == ["健康帮扶", "产业帮扶", "就业帮扶"])
        #expect(Set(recs.map(\.key)).count == 3, "three keys")
        let bad = try mapper.map(RawRow(number: 3, columns: columns, values: ["H1", "健康帮扶、吃饭帮扶", "2026-03-01"]), document: "m.csv")
        guard case .rejected(let why) = bad else { Issue.record("expected a rejection: \(bad)"); return }
        #expect(why.count == 1 && why[0].message.contains("吃饭帮扶"))
        // split on a field outside the key is refused when the mapping loads.
        #expect(throws: DiagnosticList.self) {
            _ = try loader().load(text: """
                source: measures
                connector: file
                fetch: { path: "m.csv" }
                format: csv
                record: assistance_measure
                key: [household_id, started_on]
                fields: { household_id: 户编号, measure: { from: 帮扶措施, split: "、" }, started_on: 开始日期 }
                """, file: "measures.yaml")
        }
    }

    /// A computed field read by keep_if, computed from an invalid value: the row is quarantined
    /// for that value, not skipped as if keep_if had said no.
    @Test func aComputedFieldFromAnInvalidValueDoesNotHideTheRow() throws {
        let m = try loader().load(text: """
            source: dibao
            connector: file
            fetch: { path: "d.csv" }
            format: csv
            record: assistance_enrollment
            fields:
              id_number: 身份证号
              program: { value: 农村低保 }
              started_on: 开始日期
              status: { expr: "if(started_on >= period_start, '新增', '在保')" }
            keep_if: "status == '新增'"
            """, file: "dibao.yaml")
        let mapper = RowMapper(mapping: m, period: Period("2026-10")!)
        let columns = Columns(["身份证号", "开始日期"], fixed: true)
        let r = try mapper.map(RawRow(number: 2, columns: columns, values: [makeID("411081", "19600101", 1), "2026-02-30"]), document: "d.csv")
        guard case .rejected(let why) = r else { Issue.record("expected a rejection, not \(r)"); return }
        #expect(why.first?.field == "started_on")
    }
}
