import Foundation
import ZIPFoundation

/// Writes an Excel workbook (.xlsx) that Excel and WPS open: one or more sheets, text cells as
/// shared strings (or inline), numbers as numbers. Rows are streamed to a temporary file per
/// sheet, so large sheets do not sit in memory; only the shared-string table does.
///
/// ```swift
/// let w = try XLSXWriter(url: out)
/// try w.addSheet("花名册") { row in
///     row([.text("户编号"), .text("人数")])
///     row([.text("H001"), .number("3")])
/// }
/// try w.close()
/// ```
public final class XLSXWriter {
    public enum Cell: Sendable {
        case text(String)
        case number(String)
        case empty
    }

    let url: URL
    let useSharedStrings: Bool
    private var sheets: [(name: String, file: URL)] = []
    private var strings: [String] = []
    private var stringIndex: [String: Int] = [:]
    private let scratch: URL

    public init(url: URL, sharedStrings: Bool = true) throws {
        self.url = url
        self.useSharedStrings = sharedStrings
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hub-xlsxw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: scratch) }

    /// Adds a sheet; `body` receives a function that appends one row.
    public func addSheet(_ name: String, _ body: (_ row: ([Cell]) throws -> Void) throws -> Void) throws {
        let file = scratch.appendingPathComponent("sheet\(sheets.count + 1).xml")
        FileManager.default.createFile(atPath: file.path, contents: nil)
        let h = try FileHandle(forWritingTo: file)
        var buffer = Data()
        func flush() throws { try h.write(contentsOf: buffer); buffer.removeAll(keepingCapacity: true) }
        buffer.append(contentsOf: Array(#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#.utf8))
        var r = 0
        try body { cells in
            r += 1
            var s = "<row r=\"\(r)\">"
            for (i, c) in cells.enumerated() {
                let ref = Self.columnName(i) + String(r)
                switch c {
                case .empty: continue
                case .number(let n): s += "<c r=\"\(ref)\"><v>\(Self.escape(n))</v></c>"
                case .text(let t):
                    if useSharedStrings {
                        let idx: Int
                        if let k = stringIndex[t] { idx = k } else { idx = strings.count; strings.append(t); stringIndex[t] = idx }
                        s += "<c r=\"\(ref)\" t=\"s\"><v>\(idx)</v></c>"
                    } else {
                        s += "<c r=\"\(ref)\" t=\"inlineStr\"><is><t xml:space=\"preserve\">\(Self.escape(t))</t></is></c>"
                    }
                }
            }
            s += "</row>"
            buffer.append(contentsOf: Array(s.utf8))
            if buffer.count > 1 << 20 { try flush() }
        }
        buffer.append(contentsOf: Array("</sheetData></worksheet>".utf8))
        try flush()
        try h.close()
        sheets.append((name, file))
    }

    /// Writes the archive.
    public func close() throws {
        try? FileManager.default.removeItem(at: url)
        let archive = try Archive(url: url, accessMode: .create)
        func add(_ path: String, _ text: String) throws {
            let data = Data(text.utf8)
            try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .deflate) { pos, size in
                data.subdata(in: Int(pos)..<Int(pos) + size)
            }
        }
        var types = #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>"#
        for i in sheets.indices { types += "<Override PartName=\"/xl/worksheets/sheet\(i + 1).xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>" }
        if useSharedStrings { types += #"<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>"# }
        types += "</Types>"
        try add("[Content_Types].xml", types)
        try add("_rels/.rels", #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#)
        var wb = #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>"#
        var rels = #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#
        for (i, s) in sheets.enumerated() {
            wb += "<sheet name=\"\(Self.escape(s.name))\" sheetId=\"\(i + 1)\" r:id=\"rId\(i + 1)\"/>"
            rels += "<Relationship Id=\"rId\(i + 1)\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet\(i + 1).xml\"/>"
        }
        wb += "</sheets></workbook>"
        rels += "<Relationship Id=\"rId\(sheets.count + 1)\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" Target=\"styles.xml\"/>"
        if useSharedStrings { rels += "<Relationship Id=\"rId\(sheets.count + 2)\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings\" Target=\"sharedStrings.xml\"/>" }
        rels += "</Relationships>"
        try add("xl/workbook.xml", wb)
        try add("xl/_rels/workbook.xml.rels", rels)
        try add("xl/styles.xml", #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font><sz val="11"/><name val="宋体"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf/></cellStyleXfs><cellXfs count="1"><xf/></cellXfs></styleSheet>"#)
        for (i, s) in sheets.enumerated() {
            try archive.addEntry(with: "xl/worksheets/sheet\(i + 1).xml", fileURL: s.file, compressionMethod: .deflate)
        }
        if useSharedStrings {
            var ss = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" count=\"\(strings.count)\" uniqueCount=\"\(strings.count)\">"
            for s in strings { ss += "<si><t xml:space=\"preserve\">\(Self.escape(s))</t></si>" }
            ss += "</sst>"
            try add("xl/sharedStrings.xml", ss)
        }
    }

    static func columnName(_ i: Int) -> String {
        var n = i + 1
        var s = ""
        while n > 0 { let r = (n - 1) % 26; s = String(UnicodeScalar(UInt8(65 + r))) + s; n = (n - 1) / 26 }
        return s
    }

    /// Escapes text for XML content and attributes, dropping control characters XML 1.0 forbids.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default:
                // XML 1.0 forbids most control characters even escaped.
                if c.value < 0x20 && c != "\t" && c != "\n" && c != "\r" { continue }
                out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
