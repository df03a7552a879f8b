import Foundation
import Testing
@testable import Hub

@Suite struct FieldParserTests {
    func spec(_ type: FieldType, formats: [String] = [], scale: Int64 = 1, negative: Bool = false, map: [String: String]? = nil) -> FieldSpec {
        var s = FieldSpec(name: "f", type: type, from: ["c"], constant: nil, required: false, defaultValue: nil,
                          location: SourceLocation(file: "t", line: 1, column: 1))
        s.formats = formats.map { try! DateFormat($0) }
        s.moneyScale = scale
        s.allowNegative = negative
        s.codeMap = map
        return s
    }

    @Test func moneyAsDepartmentsWriteIt() {
        #expect(FieldParser.parse("68,213.40", spec(.money)) == .success(.money(6_821_340)))
        #expect(FieldParser.parse("￥1234", spec(.money)) == .success(.money(123_400)))
        #expect(FieldParser.parse("3.5万", spec(.money)) == .success(.money(3_500_000)))
        #expect(FieldParser.parse("1.23456", spec(.money, scale: 10000)) == .success(.money(1_234_560)))
        #expect(FieldParser.parse("0.005", spec(.money)) == .success(.money(1)))
        #expect(FieldParser.parse("-120.5", spec(.money, negative: true)) == .success(.money(-12_050)))
        #expect(FieldParser.parse("(120.50)", spec(.money, negative: true)) == .success(.money(-12_050)))
        guard case .failure(let why) = FieldParser.parse("-120.5", spec(.money)) else { Issue.record("negative accepted"); return }
        #expect(why.contains("负数"))
        guard case .failure = FieldParser.parse("约3万", spec(.money)) else { Issue.record("text accepted as money"); return }
        guard case .failure = FieldParser.parse("1.2.3", spec(.money)) else { Issue.record("1.2.3 accepted"); return }
    }

    @Test func datesWithExplicitFormats() {
        #expect(FieldParser.parse("20261005", spec(.date, formats: ["yyyyMMdd"])) == .success(.date(CivilDate(year: 2026, month: 10, day: 5)!)))
        #expect(FieldParser.parse("2026年3月7日", spec(.date, formats: ["yyyy年M月d日"])) == .success(.date(CivilDate(year: 2026, month: 3, day: 7)!)))
        #expect(FieldParser.parse("2026-10-07 10:02:57", spec(.datetime, formats: ["yyyy-MM-dd HH:mm:ss"]))
                == .success(.datetime(CivilDate(year: 2026, month: 10, day: 7)!, 36177)))
        // Excel serials: 45658 is 2025-01-01; 60 is the 1900-02-29 Excel invented, 61 is 1900-03-01.
        #expect(FieldParser.parse("45658", spec(.date, formats: ["excel"])) == .success(.date(CivilDate(year: 2025, month: 1, day: 1)!)))
        #expect(FieldParser.parse("61", spec(.date, formats: ["excel"])) == .success(.date(CivilDate(year: 1900, month: 3, day: 1)!)))
        #expect(FieldParser.parse("2026-13-45", spec(.date, formats: ["yyyy-MM-dd"])) == .failure("日期 2026-13-45 无效（格式 yyyy-MM-dd）"))
        guard case .failure = FieldParser.parse("2026-02-29", spec(.date)) else { Issue.record("2026-02-29 accepted"); return }
        #expect(FieldParser.parse("2024-02-29", spec(.date)) == .success(.date(CivilDate(year: 2024, month: 2, day: 29)!)))
        // A pattern is matched whole: trailing text is not silently dropped.
        guard case .failure = FieldParser.parse("20261005x", spec(.date, formats: ["yyyyMMdd"])) else { Issue.record("trailing text accepted"); return }
    }

    @Test func codeMapsNormaliseAndRefuseUnknownValues() {
        let s = spec(.code, map: ["一级": "一级", "1": "一级", "二级": "二级"])
        #expect(FieldParser.parse(" 1 ", s) == .success(.text("一级")))
        guard case .failure(let why) = FieldParser.parse("五级", s) else { Issue.record("unknown code accepted"); return }
        #expect(why.contains("五级") && why.contains("代码表"))
    }

    @Test func integersDecimalsRegionsBooleans() {
        #expect(FieldParser.parse("1,204", spec(.integer)) == .success(.integer(1204)))
        #expect(FieldParser.parse("3.00", spec(.integer)) == .success(.integer(3)))
        guard case .failure = FieldParser.parse("3.5", spec(.integer)) else { Issue.record("3.5 as integer"); return }
        #expect(FieldParser.parse("12.75", spec(.decimal)) == .success(.decimal(12.75)))
        #expect(FieldParser.parse("411081100201", spec(.region)) == .success(.text("411081100201")))
        guard case .failure = FieldParser.parse("41108", spec(.region)) else { Issue.record("5-digit region"); return }
        #expect(FieldParser.parse("是", spec(.bool)) == .success(.bool(true)))
        #expect(FieldParser.parse("否", spec(.bool)) == .success(.bool(false)))
    }

    /// The byte-level fast paths (plain amounts, 18-character IDs) must agree with the full
    /// parsers on every input: each value is also parsed in a form only the full parser takes.
    @Test func fastPathsAgreeWithTheFullParsers() {
        var rng = SystemRandomNumberGenerator()
        let pieces = ["0", "1", "9", "05", ".", "-", "00", "123", "4567", "8.", ".5", "99999999"]
        for _ in 0..<20_000 {
            var text = ""
            for _ in 0..<Int.random(in: 1...5, using: &rng) { text += pieces.randomElement(using: &rng)! }
            // A trailing 元 sends the same amount through the general parser.
            #expect(Money.parse(text) == Money.parse(text + "元"), "\(text)")
            #expect(Money.parse(text, scale: 10000) == Money.parse(text + "元", scale: 10000), "\(text)")
        }
        for _ in 0..<20_000 {
            var digits = (0..<17).map { _ in String(Int.random(in: 0...9, using: &rng)) }.joined()
            if Bool.random(using: &rng) {
                // A plausible birth date, so the check character decides.
                let y = Int.random(in: 1900...2020), m = Int.random(in: 1...12), d = Int.random(in: 1...28)
                digits = String(digits.prefix(6)) + String(format: "%04d%02d%02d", y, m, d) + String(digits.suffix(3))
            }
            let last = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "X", "x"].randomElement(using: &rng)!
            let id = digits + last
            // A leading space sends the same number through the general parser.
            let fast = Result { () throws(ResidentID.Problem) in try ResidentID(parsing: id).value }
            let full = Result { () throws(ResidentID.Problem) in try ResidentID(parsing: " " + id).value }
            #expect(fast == full, "\(id)")
        }
    }

    /// Evidence is stored as JSON and compared as text to tell a changed alert from a repeat:
    /// the direct writer must produce exactly what JSONEncoder (sorted keys) produced before.
    @Test func evidenceJSONMatchesJSONEncoder() throws {
        let list = [
            Evidence(type: "medical_claim", source: "yibao/2026", run: 12, row: 3,
                     fields: ["name": "张\"三\\", "a10": "x/y", "a2": "line\nbreak\ttab\r", "B": "\u{01}\u{1F}", "中文字段": "值", "empty": ""]),
            Evidence(type: "person", source: "roster", run: -1, row: 0, fields: [:]),
        ]
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(Evidence.json(list) == String(decoding: try enc.encode(list), as: UTF8.self))
        #expect(Evidence.json([]) == "[]")
    }
}

/// Timestamps with a UTC offset, in the default formats and in explicit ones, converted to the
/// county's time (UTC+8).
@Suite struct UTCOffsetTests {
    func local(_ text: String, _ format: String? = nil) -> String? {
        let formats = format.map { [try! DateFormat($0)] } ?? DateFormat.defaults
        for f in formats { if let (d, s) = f.parse(text) { return Value.datetime(d, s).description } }
        return nil
    }

    @Test func offsetsAreConvertedToChinaStandardTime() {
        #expect(local("2026-10-03T09:00:00+08:00") == "2026-10-03 09:00:00")
        #expect(local("2026-10-03T01:30:00Z") == "2026-10-03 09:30:00")
        #expect(local("2026-10-02T20:00:00-0500") == "2026-10-03 09:00:00")
        #expect(local("2026-12-31T23:30:00+00:00") == "2027-01-01 07:30:00", "the day and the year change")
        #expect(local("2026-10-03T09:00:00.250+08:00") == "2026-10-03 09:00:00", "fractional seconds before the offset")
        #expect(local("2026-10-03 09:00:00+08") == "2026-10-03 09:00:00")
        #expect(local("2026-10-03 09:00:00+0800", "yyyy-MM-dd HH:mm:ssXXX") == "2026-10-03 09:00:00")
        #expect(local("2026-10-03T09:00:00+25:00") == nil, "no such offset")
        #expect(local("2026-10-03T09:00:00+08:00x") == nil, "nothing may trail")
        #expect(local("2026-10-03T09:00:00") == "2026-10-03 09:00:00", "without an offset the time is the county's already")
    }
}
