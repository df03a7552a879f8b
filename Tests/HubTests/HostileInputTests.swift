import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
@testable import HubWeb

/// The hostile-input corpus under Tests/Corpus: nothing crashes, nothing gets in, nothing good
/// is lost, and every refusal says why.
@Suite struct HostileInputTests {
    static let corpus = repoRoot.appendingPathComponent("Tests/Corpus")
    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: Self.corpus.appendingPathComponent(path))) }

    func csv(_ path: String, _ options: CSVOptions = CSVOptions()) throws -> [RawRow] {
        var d = CSVDecoder(options: options)
        return try decodeAll(&d, try bytes(path), chunk: 7).rows
    }

    @Test func csvEdgeCases() throws {
        let q = try csv("csv/quotes-newlines.csv")
        #expect(q.count == 2 && q[0]["结算ID"] == "S,1" && q[1]["结算ID"] == "S\"2" && q[1]["结算时间"] == "2026-10-01\n10:00:00")
        let ragged = try csv("csv/ragged.csv")
        #expect(ragged.map { $0.problem != nil } == [false, true, false, false])
        #expect(try csv("csv/nul-bytes.csv").first?.problem?.contains("NUL") == true)
        var utf8 = CSVOptions(); utf8.encoding = .utf8
        let mixed = try csv("csv/mixed-encoding.csv", utf8)
        #expect(mixed[0].problem == nil && mixed[1].problem?.contains("utf-8") == true)   // the bad row alone is flagged
        #expect(try csv("csv/invalid-utf8.csv", utf8).first?.problem != nil)
        let cut = try csv("csv/unterminated-quote.csv")
        #expect(cut.count == 2 && cut[0].problem == nil && cut[1].problem?.contains("引号未闭合") == true)
        var title = CSVOptions(); title.headerRow = 2
        #expect(throws: DecodeError.self) { _ = try csv("csv/only-title.csv", title) }
        // A two-megabyte line is one (bad) value, not a crash.
        var d = CSVDecoder(options: CSVOptions())
        let long = Array(("结算ID,身份证号\nS1," + String(repeating: "9", count: 2_000_000) + "\n").utf8)
        let rows = try decodeAll(&d, long, chunk: 65536).rows
        #expect(rows.count == 1 && rows[0]["身份证号"]?.count == 2_000_000)
    }

    @Test func xmlAttacksAreRefusedWithoutReadingAnything() throws {
        for f in ["xml/xxe-file.xml", "xml/xxe-network.xml", "xml/parameter-entity.xml", "xml/billion-laughs.xml", "xml/quadratic-blowup.xml"] {
            var d = XMLStreamDecoder(options: XMLOptions(recordElement: "Claim"))
            var rows: [RawRow] = []
            #expect {
                try bytes(f).withUnsafeBytes { try d.feed($0) { rows.append($0) } }
                _ = try d.finish { rows.append($0) }
            } throws: { ($0 as? DecodeError)?.message.contains("拒收") == true }
            #expect(rows.isEmpty, "\(f) yielded rows")
        }
        for f in ["xml/deep-nesting.xml", "xml/undeclared-entity.xml"] {
            var d = XMLStreamDecoder(options: XMLOptions(recordElement: "Claim"))
            #expect(throws: DecodeError.self, "\(f)") { _ = try decodeAll(&d, try bytes(f)) }
        }
    }

    @Test func jsonAttacks() throws {
        var top = JSONOptions(); top.recordsAt = []
        var d1 = JSONStreamDecoder(options: top)
        #expect(throws: DecodeError.self) { _ = try decodeAll(&d1, try bytes("json/deep-nesting.json"), chunk: 4096) }
        var list = JSONOptions(); list.recordsAt = ["data", "list"]
        for f in ["json/deep-in-record.json", "json/bad-surrogate.json", "json/trailing-garbage.json"] {
            var d = JSONStreamDecoder(options: list)
            #expect(throws: DecodeError.self, "\(f)") { _ = try decodeAll(&d, try bytes(f)) }
        }
        // An ID sent as a JSON number keeps all 18 digits.
        var d = JSONStreamDecoder(options: list)
        let row = try #require(try decodeAll(&d, try bytes("json/number-id.json")).rows.first)
        #expect(try ResidentID(parsing: row["sfzh"]!).value == row["sfzh"])
    }

    @Test func lookAlikeAndInvalidIDsAreAllRejected() throws {
        let lines = try String(contentsOf: Self.corpus.appendingPathComponent("ids.txt"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("#") }
        #expect(lines.count >= 11)
        for l in lines {
            #expect(throws: ResidentID.Problem.self, "\(l) accepted") { try ResidentID(parsing: String(l)) }
        }
    }

    @Test func formulaInjectionIsNeutralisedInEveryExport() throws {
        let rows = try csv("csv/formula-injection.csv")
        for r in rows {
            let v = try #require(r["结算ID"])
            // Stored as the department sent it…
            #expect("=@+-".contains(v.first!))
            // …and neutralised wherever a spreadsheet will open it.
            #expect(WebApp.neutralise(v).hasPrefix("'"))
        }
        #expect(WebApp.neutralise("正常文本") == "正常文本")
        #expect(WebApp.neutralise("\t=1").hasPrefix("'"))
    }

    @Test func injectionStringsInFiltersChangeNothing() throws {
        let store = try SQLiteStore(path: scratchDirectory().appendingPathComponent("i.sqlite").path)
        let admin = try store.addUser(username: "admin", displayName: "a", role: .admin, townships: [], password: "long-password-1")
        try store.saveAlerts([Alert(rule: "r", title: "t", severity: .high, subjectKind: .household, subjectID: "H1", householdID: "H1",
                                    villageCode: "411081100201", townshipCode: "411081100", period: "2026-10", message: "m", evidence: [], ruleVersion: "v")])
        for evil in ["' OR '1'='1", "x'); DROP TABLE cases; --", "%", "_", "\\", "\u{0}", "<script>"] {
            var f = CaseFilter()
            f.rule = evil; f.village = evil; f.period = evil; f.township = evil
            #expect(CaseStatus(rawValue: evil) == nil && Rule.Severity(rawValue: evil) == nil)
            #expect(try store.cases(for: admin, filter: f).isEmpty, "\(evil) matched something")
        }
        #expect(try store.cases(for: admin).count == 1)    // and the table is still there
    }

    @Test func anEditedAuditEntryIsDetected() throws {
        let store = try SQLiteStore(path: scratchDirectory().appendingPathComponent("a.sqlite").path)
        for i in 1...5 { try store.audit("u\(i)", "查看案件", target: "案件 #\(i)", address: "127.0.0.1") }
        #expect(try store.verifyAuditLog() == nil)
        // The log refuses edits and deletions through SQL…
        #expect { try store.unsafeExecuteForTests("UPDATE audit_log SET username = 'x' WHERE id = 3") } throws: { "\($0)".contains("append-only") }
        #expect { try store.unsafeExecuteForTests("DELETE FROM audit_log WHERE id = 5") } throws: { "\($0)".contains("append-only") }
        // …and when someone bypasses that (drops the trigger), the chain shows where.
        try store.unsafeExecuteForTests("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET target = '案件 #99' WHERE id = 3")
        #expect(try store.verifyAuditLog() == 3)
    }
}

/// Inputs that once crashed (or could crash) a fuzz target, replayed through the same code.
@Suite struct FuzzRegressionTests {
    /// What replaying one kept input gives, in words a manifest line can hold:
    /// `rows=N problems=M` (decoded; M rows carry a problem), `error=…` (refused as a whole, the
    /// message containing the text), `ok` (a mapping or expression that loads).
    static func outcome(target: String, _ data: [UInt8], file: String) -> String {
        func describe(_ error: any Error) -> String {
            if let e = error as? DecodeError { return "error=" + e.message }
            if let e = error as? DiagnosticList { return "error=" + e.description }
            if let e = error as? ExpressionError { return "error=" + e.message }
            return "error=\(error)"
        }
        let format: FeedFormat
        switch target {
        case "csv": format = .csv(CSVOptions())
        case "json": format = .json(JSONOptions())
        case "ndjson": format = .ndjson
        case "xml": format = .xml(XMLOptions(recordElement: "Claim"))
        case "xlsx": format = .xlsx(XLSXOptions())
        case "mapping":
            do { _ = try loader().load(text: String(decoding: data, as: UTF8.self), file: file); return "ok" } catch { return describe(error) }
        case "expression":
            do {
                let e = try ExpressionParser.parse(String(decoding: data, as: UTF8.self))
                try ExpressionChecker.check(e, in: FieldScope(["a": .number]))
                return "ok"
            } catch { return describe(error) }
        default: return "unknown target \(target)"
        }
        var d = format.makeDecoder()
        do {
            let (rows, _) = try decodeAll(&d, data, chunk: max(1, data.count / 2))
            return "rows=\(rows.count) problems=\(rows.filter { $0.problem != nil }.count)"
        } catch { return describe(error) }
    }

    /// Every kept input has a line in `expected.txt` saying what it must give, and gives it;
    /// every fuzz target has at least one input, so every branch here runs.
    @Test func everyKeptInputGivesItsExpectedOutcome() throws {
        let root = repoRoot.appendingPathComponent("Tests/Corpus/fuzz-regressions")
        let fm = FileManager.default
        var expected: [String: String] = [:]
        for line in try String(contentsOf: root.appendingPathComponent("expected.txt"), encoding: .utf8).split(separator: "\n")
        where !line.hasPrefix("#") && !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            expected[parts[0]] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        }
        var seen = Set<String>(), targets = Set<String>()
        for target in try fm.contentsOfDirectory(atPath: root.path).sorted() {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: root.appendingPathComponent(target).path, isDirectory: &isDir), isDir.boolValue else { continue }
            for f in try fm.contentsOfDirectory(atPath: root.appendingPathComponent(target).path).sorted() {
                let key = "\(target)/\(f)"
                seen.insert(key); targets.insert(target)
                let got = Self.outcome(target: target, Array(try Data(contentsOf: root.appendingPathComponent(key))), file: f)
                guard let want = expected[key] else { Issue.record("\(key) has no line in expected.txt (it gives: \(got))"); continue }
                if want.hasPrefix("error=") {
                    #expect(got.hasPrefix("error=") && got.contains(want.dropFirst(6)), "\(key): expected \(want), got \(got)")
                } else {
                    #expect(got == want, "\(key): expected \(want), got \(got)")
                }
            }
        }
        #expect(Set(expected.keys) == seen, "expected.txt lists files that are not there: \(Set(expected.keys).subtracting(seen))")
        #expect(targets == ["csv", "json", "ndjson", "xml", "xlsx", "mapping", "expression"], "targets with inputs: \(targets.sorted())")
    }

    /// Found by the fuzzer: 600 nested "[" exhausted the parser's stack. Nesting and length are
    /// bounded now, with a reason an operator can act on; ordinary expressions still parse.
    @Test func deeplyNestedOrOverlongExpressionsAreRefusedWithAReason() throws {
        let nested = [String(repeating: "[", count: 600) + "1", String(repeating: "(", count: 100) + "1" + String(repeating: ")", count: 100),
                      String(repeating: "- ", count: 200) + "1", String(repeating: "not ", count: 200) + "true", String(repeating: "f(", count: 100) + "1"]
        for text in nested {
            #expect { _ = try ExpressionParser.parse(text) } throws: { ($0 as? ExpressionError)?.message.contains("嵌套过深") == true }
        }
        let long = (0..<1500).map { _ in "1" }.joined(separator: " + ")
        #expect { _ = try ExpressionParser.parse(long) } throws: { ($0 as? ExpressionError)?.message.contains("过长") == true }
        _ = try ExpressionParser.parse(String(repeating: "(", count: 30) + "1" + String(repeating: ")", count: 30))
        _ = try ExpressionParser.parse((0..<300).map { "a\($0) > 0" }.joined(separator: " and "))
    }
}
