import Foundation
import Testing
@testable import Hub

/// A mapping that never needs a monthly edit: the month being pulled fills `value`, `default`,
/// `map`, `extract` and expressions, checked when the mapping loads.
@Suite struct PeriodValuesTests {
    static let text = """
    source: dibao
    connector: file
    fetch: { path: "dibao-{period}.csv" }
    format: csv
    record: assistance_enrollment
    fields:
      id_number: 身份证号
      program: { value: 农村低保 }
      # The list says 停保 with the month it stopped (202610), or nothing: this month's stops.
      status: { from: 停保月份, map: { "{period_compact}": 停保 }, default: 在保 }
      # The year is part of a longer text: 2026年度新增.
      dibao_class: { from: 类别, extract: "^({year})年度(新增)$", map: { 新增: A }, on_invalid: empty }
      started_on: { from: 开始日期, default: "{period_start}" }
      stopped_on: { value: "{period_end}" }
      region: { from: 区划, extract: "(\\\\d{6})" }
    keep_if: "period == '2026-10' or period_compact == '202611'"
    """

    func map(_ period: String, _ rows: [[String?]]) throws -> [RowMapper.Result] {
        let m = try loader().load(text: Self.text, file: "dibao.yaml")
        let mapper = RowMapper(mapping: m, period: Period(period)!)
        let columns = Columns(["身份证号", "停保月份", "类别", "开始日期", "区划"], fixed: true)
        return try rows.enumerated().map { try mapper.map(RawRow(number: $0.offset + 2, columns: columns, values: $0.element), document: "d.csv") }
    }

    func values(_ r: RowMapper.Result) -> [String: String] {
        guard case .records(let recs) = r, let rec = recs.first else { return [:] }
        var out: [String: String] = [:]
        for (f, v) in zip(rec.type.fields, rec.values) where !v.isNull { out[f.name] = v.description }
        return out
    }

    @Test func theSameMappingReadsOctoberThenNovember() throws {
        let id = makeID("411081", "19600101", 1)
        let rows: [[String?]] = [[id, "202610", "2026年度新增", nil, "河南省411081"], [id, "202611", "2025年度新增", "2026-09-15", "411081"]]
        let october = try map("2026-10", rows).map(values)
        #expect(october[0]["status"] == "停保" && october[0]["started_on"] == "2026-10-01" && october[0]["stopped_on"] == "2026-10-31")
        #expect(october[0]["dibao_class"] == nil, "extract takes the group, the map turns it into A: \(october[0])")
        #expect(october[0]["region"] == "411081")
        // 202611 is not a stop in October: the code table has no such key, the row is refused with the column.
        let octoberSecond = try map("2026-10", [rows[1]])[0]
        guard case .rejected(let why) = octoberSecond else { Issue.record("expected a rejection, got \(octoberSecond)"); return }
        #expect(why.first?.column == "停保月份" && why.first?.message.contains("202611") == true)
        // November, no edit: its own month is the stop month, its own dates fill the defaults.
        let november = try map("2026-11", rows).map(values)
        #expect(november[1]["status"] == "停保" && november[1]["started_on"] == "2026-09-15" && november[1]["stopped_on"] == "2026-11-30")
        // keep_if sees the period too: December keeps nothing.
        let december = try map("2026-12", [[id, nil, nil, nil, "411081"]])
        guard case .skipped = december[0] else { Issue.record("keep_if should skip December: \(december[0])"); return }
    }

    @Test func aDefaultOrValueIsNotPutThroughExtract() throws {
        let m = try loader().load(text: """
            source: m
            connector: file
            fetch: { path: "m.csv" }
            format: csv
            record: assistance_measure
            fields:
              household_id: 户编号
              measure: { from: 措施, extract: "^措施[:：](.+)$", default: 其他 }
              started_on: { value: "{period_start}" }
            """, file: "m.yaml")
        let mapper = RowMapper(mapping: m, period: Period("2026-10")!)
        let columns = Columns(["户编号", "措施"], fixed: true)
        let r = try mapper.map(RawRow(number: 2, columns: columns, values: ["H1", nil]), document: "m.csv")
        #expect(values(r)["measure"] == "其他", "\(r)")
    }

    @Test func anUnknownPlaceholderIsRefusedWhenTheMappingLoads() throws {
        let bad = Self.text.replacingOccurrences(of: "{period_compact}", with: "{perod_compact}")
        #expect { _ = try loader().load(text: bad, file: "dibao.yaml") } throws: { e in
            let text = (e as? DiagnosticList)?.description ?? ""
            return text.contains("dibao.yaml:10:") && text.contains("{perod_compact} 不是期间变量") && text.contains("period_compact")
        }
    }

    /// A status that depends on dates, computed by `expr:` with `if()`: the same mapping through
    /// October and November, no edit.
    @Test func aComputedStatusFollowsTheMonth() throws {
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
              stopped_on: 停止日期
              status:
                expr: "if(stopped_on >= period_start and stopped_on <= period_end, '停保', if(started_on >= period_start and started_on <= period_end, '新增', '在保'))"
              monthly_amount: { expr: "if(empty(stopped_on), 500, 0)" }
            """, file: "dibao.yaml")
        let columns = Columns(["身份证号", "开始日期", "停止日期"], fixed: true)
        let rows: [[String?]] = [[makeID("411081", "19600101", 1), "2026-10-08", nil],
                                 [makeID("411081", "19600101", 2), "2025-01-01", "2026-11-20"],
                                 [makeID("411081", "19600101", 3), "2025-01-01", nil]]
        func statuses(_ period: String) throws -> [String] {
            let mapper = RowMapper(mapping: m, period: Period(period)!)
            return try rows.enumerated().map { i, r in values(try mapper.map(RawRow(number: i + 2, columns: columns, values: r), document: "d.csv"))["status"] ?? "?" }
        }
        #expect(try statuses("2026-10") == ["新增", "在保", "在保"])
        #expect(try statuses("2026-11") == ["在保", "停保", "在保"])
        let first = values(try RowMapper(mapping: m, period: Period("2026-10")!).map(RawRow(number: 2, columns: columns, values: rows[0]), document: "d.csv"))
        #expect(first["monthly_amount"] == "500.00", "a number is yuan for a money field: \(first)")
        // A computed value of the wrong type is refused when the mapping loads.
        #expect(throws: DiagnosticList.self) {
            _ = try loader().load(text: """
                source: dibao
                connector: file
                fetch: { path: "d.csv" }
                format: csv
                record: assistance_enrollment
                fields: { id_number: 身份证号, program: { value: 农村低保 }, status: { expr: "started_on" }, started_on: 开始日期 }
                """, file: "dibao.yaml")
        }
    }

    /// A wide feed, one column per month: one record per month column, the month taken from the
    /// header; empty cells give nothing; October's file and November's read by the same mapping.
    @Test func aWideFeedBecomesOneRecordPerMonthColumn() throws {
        let m = try loader().load(text: """
            source: power
            connector: file
            fetch: { path: "p.csv" }
            format: csv
            record: power_reading
            fields:
              meter_no: 户号
              id_number: 户主身份证号
            unpivot:
              columns: "^(\\\\d{4})年(\\\\d{1,2})月用电$"
              into: kwh
              fields: { month: "{1}-{2}-01" }
            """, file: "power.yaml")
        let id = makeID("411081", "19600101", 1)
        func months(_ period: String, _ headers: [String], _ cells: [String?]) throws -> [String] {
            let mapper = RowMapper(mapping: m, period: Period(period)!)
            let r = try mapper.map(RawRow(number: 2, columns: Columns(["户号", "户主身份证号"] + headers + ["备注"], fixed: true), values: ["M1", id] + cells + ["x"]), document: "p.csv")
            guard case .records(let recs) = r else { Issue.record("expected records: \(r)"); return [] }
            return recs.map { rec in "\(rec.values[3])=\(rec.values[4])" }
        }
        let october = try months("2026-10", ["2026年09月用电", "2026年10月用电", "2026年8月用电"], ["120.5", "98", nil])
        #expect(october == ["2026-09-01=120.5", "2026-10-01=98", ], "\(october)")
        let november = try months("2026-11", ["2026年10月用电", "2026年11月用电"], ["98", "12"])
        #expect(november == ["2026-10-01=98", "2026-11-01=12"])
        // A bad cell refuses that month only: the row's other months are stored, and the row is
        // quarantined with the column that was bad.
        let mapper = RowMapper(mapping: m, period: Period("2026-10")!)
        let partial = try mapper.map(RawRow(number: 7, columns: Columns(["户号", "户主身份证号", "2026年09月用电", "2026年10月用电"], fixed: true),
                                            values: ["M1", id, "--", "98"]), document: "p.csv")
        guard case .partial(let kept, let why) = partial else { Issue.record("expected a partial row: \(partial)"); return }
        #expect(kept.map { "\($0.values[3])" } == ["2026-10-01"])
        #expect(why.count == 1 && why[0].column == "2026年09月用电", "\(why.map(\.text))")
        // A header group that does not exist is refused when the mapping loads.
        #expect(throws: DiagnosticList.self) {
            _ = try loader().load(text: """
                source: power
                connector: file
                fetch: { path: "p.csv" }
                format: csv
                record: power_reading
                fields: { meter_no: 户号 }
                unpivot: { columns: "^(\\\\d{4})年用电$", into: kwh, fields: { month: "{1}-{2}-01" } }
                """, file: "power.yaml")
        }
    }
}
