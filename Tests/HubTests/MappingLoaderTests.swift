import Foundation
import Testing
@testable import Hub
import Connectors

@Suite struct MappingLoaderTests {
    @Test func everyShippedMappingLoads() throws {
        let dir = repoRoot.appendingPathComponent("Mappings")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        #expect(!files.isEmpty)
        for f in files {
            let m = try loader().load(file: dir.appendingPathComponent(f))
            #expect(m.source + ".yaml" == f)
            #expect(!m.outputs.isEmpty)
        }
        #expect(shippedTypes.names.contains("medical_claim"))
    }

    @Test func brokenMappingReportsEveryMistakeWithLineAndColumn() throws {
        let text = """
        source: broken
        connector: file
        fetch: { path: x.csv }
        formt: csv
        format: csv
        record: medical_claim
        key: [settlement_id]
        fields:
          settlement_id: 结算ID
          id_numbr: 证件号码
          settled_at: { from: 结算时间, format: "yyyy-MM-dd HH:mm:ss" }
          total_cost: { from: 医疗费总额, unit: 千元 }
          med_type: { from: 医疗类别, map: { "21": 住院部 } }
        keep_if: "total_cost >= 50000 and self_pey > 0"
        """
        #expect {
            _ = try loader().load(text: text, file: "broken.yaml")
        } throws: { error in
            let items = (error as! DiagnosticList).items.map(\.description)
            let expected = [
                "broken.yaml:4:1: 映射文件 中有未知的键 \"formt\"，是否应为 \"format\"？",
                "broken.yaml:10:3: 字段 \"id_numbr\" 不是类型 medical_claim 的字段，是否应为 \"id_number\"？",
                "broken.yaml:12:36: 字段 total_cost.unit 的值 \"千元\" 无效",
                "broken.yaml:13:40: 代码 \"住院部\" 不是字段 med_type 的允许取值，是否应为 \"住院\"？",
                "broken.yaml:9:3: 类型 medical_claim 的必填字段 id_number（身份证号）未在 fields 中给出",
                "broken.yaml:14:35: keep_if：未知的字段 \"self_pey\"，是否应为 \"self_pay\"？",
            ]
            for e in expected {
                #expect(items.contains { $0.hasPrefix(e) }, "missing: \(e)\n got: \(items.joined(separator: "\n"))")
            }
            return items.count == expected.count
        }
    }

    @Test func typeAndFieldNamesFitEveryStoresIdentifiers() throws {
        let long = String(repeating: "a", count: RecordType.maxNameLength + 1)
        do {
            _ = try RecordType.load(text: "type: \(long)\nfields: { a: text }\nkey: [a]\n", file: "long.yaml")
            Issue.record("a type name longer than a table name may be was accepted")
        } catch {
            #expect("\(error)".contains("最多 \(RecordType.maxNameLength) 个") && "\(error)".contains("long.yaml:1"), "\(error)")
        }
        let fits = try RecordType.load(text: "type: \(long.dropLast())\nfields: { \(String(repeating: "b", count: 63)): text }\nkey: [\(String(repeating: "b", count: 63))]\n", file: "fits.yaml")
        #expect(fits.tableName.count + "_household".count <= 63)
        #expect(throws: DiagnosticList.self) { _ = try RecordType.load(text: "type: t\nfields: { \(String(repeating: "b", count: 64)): text }\nkey: [a]\n", file: "f.yaml") }
    }

    @Test func yamlSyntaxErrorsHavePositions() {
        #expect {
            _ = try loader().load(text: "source: x\nfields: [a, b\nformat: csv\n", file: "bad.yaml")
        } throws: { e in
            guard let d = (e as? DiagnosticList)?.items.first else { return false }
            return d.location.line >= 2 && d.message.contains("YAML")
        }
    }

    @Test func keepIfTypeErrorsAreCaught() {
        let text = """
        source: t
        connector: file
        fetch: { path: x.csv }
        format: csv
        record: medical_claim
        fields: { settlement_id: a, id_number: b, settled_at: c, total_cost: d }
        keep_if: "name > 5"
        """
        #expect {
            _ = try loader().load(text: text, file: "t.yaml")
        } throws: { ($0 as! DiagnosticList).items.contains { $0.message.contains("不能比较文本和数值") && $0.location.line == 7 } }
    }

    @Test func secretsInTheFileAreRefused() {
        let text = """
        source: s
        connector: http
        fetch: { url: "https://x/y", headers: { Authorization: "Bearer abc123" } }
        format: json
        record: medical_claim
        fields: { settlement_id: a, id_number: b, settled_at: c, total_cost: d }
        """
        #expect {
            _ = try loader().load(text: text, file: "s.yaml")
        } throws: { ($0 as! DiagnosticList).items.contains { $0.message.contains("环境变量") } }
    }

    @Test func expressionLanguage() throws {
        let scope = FieldScope(["a": .number, "t": .text, "d": .date])
        func eval(_ s: String, _ vals: [String: Value]) throws -> Value {
            let e = try ExpressionParser.parse(s)
            try ExpressionChecker.check(e, in: scope)
            return ExpressionEvaluator.evaluate(e) { vals[$0] ?? .null }
        }
        #expect(try eval("a * 2 + 1 >= 7 and not (t == '否')", ["a": .money(300), "t": .text("是")]) == .bool(true))
        #expect(try eval("t in ['一级', '二级']", ["t": .text("二级")]) == .bool(true))
        #expect(try eval("a > 0", [:]) == .bool(false))          // an empty value never satisfies a comparison
        #expect(try eval("empty(a)", [:]) == .bool(true))
        #expect(try eval("months_between(d, date('2026-10-31'))", ["d": .date(CivilDate(year: 2026, month: 4, day: 30)!)]) == .decimal(6))
        #expect(throws: ExpressionError.self) { try eval("a >", [:]) }
        #expect(throws: ExpressionError(offset: 4, message: "未知的函数 \"lenn\"，是否应为 \"len\"？")) { try eval("1 + lenn(t)", [:]) }
        // Unknown functions are refused by the parser itself: evaluation never meets one.
        #expect(throws: ExpressionError.self) { _ = try ExpressionParser.parse("frobnicate(1)") }
        // An aggregate where there are no record sets (a mapping's keep_if) is refused with what it needs.
        #expect(throws: ExpressionError(offset: 0, message: "sum() 只能用于规则的记录集，如 sum(claims.self_pay)")) { try eval("sum(a) > 1", [:]) }
    }

    @Test func suggestionsFindTheIntendedHeader() {
        #expect(Suggest.closest(to: "身份证", in: ["姓名", "证件号码", "身份证号"]) == "身份证号")
        #expect(Suggest.closest(to: "证件号", in: ["姓名", "证件号码"]) == "证件号码")
        #expect(Suggest.closest(to: "完全不同", in: ["姓名", "证件号码"]) == nil)
    }
}

@Suite struct YAMLMergeTests {
    /// Anchors and merge keys work in mappings: shared field settings written once.
    @Test func mergeKeysBringInTheAnchoredEntriesAndOwnKeysWin() throws {
        let withAnchor = """
            source: claims
            connector: file
            fetch: { path: "c.csv" }
            format: csv
            record: medical_claim
            fields:
              settlement_id: 结算ID
              id_number: 身份证号
              settled_at: 结算时间
              total_cost: &money { from: 医疗费总额, unit: 万元, negative: allow }
              self_pay: { <<: *money, from: 个人负担, negative: reject }
            """
        let mapping = try loader().load(text: withAnchor, file: "claims.yaml")
        let fields = mapping.outputs[0].fields.compactMap { $0 }
        let selfPay = try #require(fields.first { $0.name == "self_pay" })
        #expect(selfPay.from == ["个人负担"] && selfPay.moneyScale == 10000 && !selfPay.allowNegative, "merged unit, own from and negative")
    }
}
