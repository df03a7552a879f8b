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
}
