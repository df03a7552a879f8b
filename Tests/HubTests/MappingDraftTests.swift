import Foundation
import Testing
@testable import Hub
import Connectors
import SimCounty

/// `hubd mapping init` measured: for every feed of both simulated counties, starting from the
/// raw file and the record type only, how many of the fields the shipped mapping reads from a
/// column does the draft place on that same column, with no edit needed.
@Suite struct MappingDraftTests {
    struct Line: CustomStringConvertible {
        var county: String, source: String, type: String, format: String, right: Int, total: Int, wrong: [String]
        /// Of the fields holding ID numbers, dates and amounts: how many, and how many found.
        var key = 0, keyRight = 0
        var description: String { "\(county)\t\(source)\t\(type)\t\(format)\t\(right)/\(total)\t\(wrong.joined(separator: " "))" }
    }

    static func measure(synonyms: Bool = true) throws -> [Line] {
        var lines: [Line] = []
        for (config, dir) in [(CountyConfig(), "Mappings"), (CountyConfig.yanling(), "Mappings/examples/yanling")] {
            var c = config
            c.scale = 0.02
            let sim = try Simulator(config: c)
            let folder = repoRoot.appendingPathComponent(dir)
            let types = try TypeCatalog.load(directory: MappingsFolder.types(of: folder))
            let loader = MappingLoader(types: types, connectors: BuiltinConnectors.registry)
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).filter({ $0.hasSuffix(".yaml") }).sorted() {
                let m = try loader.load(file: folder.appendingPathComponent(file))
                // The roster's measures are a second sheet of the same workbook.
                let feedSource = m.source == "roster-measures" && c.style == .yuzhou ? "roster" : m.source
                guard let feed = sim.feeds.first(where: { $0.source == feedSource }) else { continue }
                for out in m.outputs {
                    var type = out.type
                    if !synonyms { type.fields = type.fields.map { var f = $0; f.synonyms = []; return f } }
                    let draft = try MappingDraft.draft(bytes: feed.bytes, fileName: feed.fileName, type: type)
                    var right = 0, total = 0, key = 0, keyRight = 0
                    var wrong: [String] = []
                    for (f, spec) in zip(out.type.fields, out.fields) {
                        guard let spec, !spec.from.isEmpty, spec.expression == nil, spec.constant == nil else { continue }
                        total += 1
                        let placed = draft.placements.first { $0.field.name == f.name }
                        let sameColumn = placed.map { p in spec.from.contains { Suggest.normalize($0) == Suggest.normalize(p.column) } } ?? false
                        // Right without edits: the same column, and no code table left to write
                        // unless the shipped mapping needed one too.
                        let ok = sameColumn && (placed!.mapStub.isEmpty || spec.codeMap != nil) && spec.extract == nil && (spec.split == nil) == (placed!.split == nil)
                        if ok { right += 1 } else { wrong.append(f.name + (placed.map { "→\($0.column)" } ?? "→无")) }
                        if [.residentID, .date, .datetime, .money].contains(f.type), out.type.fields.count > 0 {
                            // A column the feed does not have at all (the sample never holds it) is not counted.
                            if draft.columns.contains(where: { c in spec.from.contains { Suggest.normalize($0) == Suggest.normalize(c) } }) {
                                key += 1
                                if sameColumn { keyRight += 1 }
                            }
                        }
                    }
                    lines.append(Line(county: c.countyName, source: m.source, type: out.type.name, format: draft.formatName, right: right, total: total, wrong: wrong,
                                      key: key, keyRight: keyRight))
                }
            }
        }
        return lines
    }

    @Test func draftsPlaceNineInTenFieldsAndEveryIDDateAndAmount() throws {
        let lines = try Self.measure()
        let right = lines.reduce(0) { $0 + $1.right }, total = lines.reduce(0) { $0 + $1.total }
        let table = (["县\t来源\t类型\t格式\t对\t未对上"] + lines.map(\.description)).joined(separator: "\n")
        FileHandle.standardError.write(Data("mapping init accuracy: \(right)/\(total) = \(String(format: "%.1f", Double(right) / Double(total) * 100))%\n\(table)\n".utf8))
        #expect(Double(right) >= 0.9 * Double(total), "\(right)/\(total)\n\(table)")
        #expect(lines.allSatisfy { $0.key == $0.keyRight }, "every ID, date and money column found:\n\(table)")
        // For the record: the same without the type files' synonyms (titles and content only).
        let bare = try Self.measure(synonyms: false)
        let bareRight = bare.reduce(0) { $0 + $1.right }, bareTotal = bare.reduce(0) { $0 + $1.total }
        FileHandle.standardError.write(Data("mapping init accuracy without synonyms: \(bareRight)/\(bareTotal) = \(String(format: "%.1f", Double(bareRight) / Double(bareTotal) * 100))%\n".utf8))
    }

    @Test func theDraftOfTheBundledSampleLoadsAndMapsItsGoodRows() throws {
        let sample = repoRoot.appendingPathComponent("Mappings/samples/yibao_setl_202610.csv")
        let bytes = try [UInt8](Data(contentsOf: sample))
        let draft = try MappingDraft.draft(bytes: bytes, fileName: sample.path, type: shippedTypes["medical_claim"]!)
        let yaml = draft.yaml(source: "yibao", samplePath: sample.path)
        #expect(yaml.contains("csv: { encoding: gb18030, header_row: 2, footer_rows: 1 }"), "\(yaml)")
        let m = try loader().load(text: yaml, file: "yibao.yaml", directory: repoRoot.path)
        var d = m.format.makeDecoder()
        let mapper = RowMapper(mapping: m, period: Period("2026-10")!)
        var good = 0, read = 0
        func take(_ r: RawRow) throws { read += 1; if case .records = try mapper.map(r, document: "s.csv") { good += 1 } }
        try bytes.withUnsafeBytes { try d.feed($0, take); _ = try d.finish(take) }
        // scripts/make-sample-feed.py: 47 rows, 6 planted bad ones, one reversal (a negative amount).
        #expect(read == 47 && good >= 40, "\(good) of \(read) rows mapped")
    }
}
