import Foundation
import ZIPFoundation

/// Reads an Excel workbook (.xlsx): shared and inline strings, numbers as written (dates are
/// serial numbers: map them with `format: excel`), the first sheet or a named one, a title
/// above the header and totals below the data, like CSV.
///
/// A .xlsx is a ZIP archive whose directory sits at its end, so the incoming bytes are spooled
/// to a temporary file (not memory); at the end the sheet's XML is inflated chunk by chunk and
/// fed to libxml2, so a million-row sheet never sits in memory whole. The shared-string table,
/// which Excel keeps in one part, is held in memory.
public struct XLSXDecoder: RowDecoder {
    let options: XLSXOptions
    private var spool: FileHandle? = nil
    private var spoolURL: URL? = nil
    private var spooled = 0

    public init(options: XLSXOptions) { self.options = options }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (RawRow) throws -> Void) throws {
        if spool == nil {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("hub-xlsx-\(UUID().uuidString).xlsx")
            FileManager.default.createFile(atPath: url.path, contents: nil)
            spool = try FileHandle(forWritingTo: url)
            spoolURL = url
        }
        try spool!.write(contentsOf: Data(bytes))
        spooled += bytes.count
    }

    public mutating func finish(_ emit: (RawRow) throws -> Void) throws -> DocumentInfo {
        guard let url = spoolURL else { throw DecodeError("Excel 文件为空") }
        try spool?.close()
        defer { try? FileManager.default.removeItem(at: url) }
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) }
        catch { throw DecodeError("不是有效的 .xlsx 文件（ZIP 结构无法读取）：\(error)") }
        let sheetPath = try Self.sheetPath(archive, named: options.sheet)
        let strings = try Self.sharedStrings(archive)
        guard let entry = archive[sheetPath] else { throw DecodeError("工作表文件 \(sheetPath) 不存在") }
        let reader = SheetReader(options: options, strings: strings)
        let parser = SAXParser(name: sheetPath)
        parser.onStart = { reader.start($0, $1) }
        parser.onEnd = { reader.end($0) }
        parser.onText = { reader.text($0) }
        var total = 0
        _ = try archive.extract(entry, bufferSize: 1 << 18, skipCRC32: true) { data in
            total += data.count
            if total > Self.maxSheetBytes { throw DecodeError("工作表解压后超过 \(Self.maxSheetBytes >> 30) GB") }
            try data.withUnsafeBytes { try parser.feed($0) }
            try reader.drain(emit)
        }
        try parser.finish()
        reader.flushFooter()
        try reader.drain(emit)
        if reader.columns == nil && reader.lastRow > 0 && options.headerRow > 0 {
            throw DecodeError("工作表只有 \(reader.lastRow) 行，找不到第 \(options.headerRow) 行的表头（xlsx.header_row）")
        }
        return DocumentInfo(rows: reader.emitted)
    }

    static let maxSheetBytes = 8 << 30

    static func readPart(_ archive: Archive, _ path: String) throws -> Data? {
        guard let e = archive[path] else { return nil }
        var d = Data()
        _ = try archive.extract(e, skipCRC32: true) { chunk in
            d.append(chunk)
            if d.count > 256 << 20 { throw DecodeError("\(path) 过大") }
        }
        return d
    }

    /// The names of a workbook's sheets, in order (for `mapping init`, which tries each).
    public static func sheetNames(_ bytes: [UInt8]) -> [String] {
        guard let archive = try? Archive(data: Data(bytes), accessMode: .read), let sheets = try? sheets(archive) else { return [] }
        return sheets.map(\.name)
    }

    static func sheets(_ archive: Archive) throws -> [(name: String, rid: String)] {
        guard let wb = try readPart(archive, "xl/workbook.xml") else { throw DecodeError("不是 Excel 工作簿：缺少 xl/workbook.xml") }
        var sheets: [(name: String, rid: String)] = []
        let p = SAXParser(name: "workbook.xml")
        p.onStart = { n, a in
            if n == "sheet" {
                sheets.append((a.first { $0.name == "name" }?.value ?? "", a.first { $0.name == "id" }?.value ?? ""))
            }
        }
        try wb.withUnsafeBytes { try p.feed($0, final: true) }
        return sheets
    }

    /// The worksheet part for the named sheet, or the first sheet.
    static func sheetPath(_ archive: Archive, named: String?) throws -> String {
        let sheets = try sheets(archive)
        guard !sheets.isEmpty else { throw DecodeError("工作簿中没有工作表") }
        let chosen: (name: String, rid: String)
        if let named {
            guard let s = sheets.first(where: { $0.name == named }) else {
                throw DecodeError("没有名为“\(named)”的工作表（xlsx.sheet）；有：\(sheets.map(\.name).joined(separator: "、"))")
            }
            chosen = s
        } else {
            chosen = sheets[0]
        }
        var targets: [String: String] = [:]
        if let rels = try readPart(archive, "xl/_rels/workbook.xml.rels") {
            let rp = SAXParser(name: "workbook.xml.rels")
            rp.onStart = { n, a in
                if n == "Relationship", let id = a.first(where: { $0.name == "Id" })?.value, let t = a.first(where: { $0.name == "Target" })?.value {
                    targets[id] = t
                }
            }
            try rels.withUnsafeBytes { try rp.feed($0, final: true) }
        }
        guard let target = targets[chosen.rid] else { return "xl/worksheets/sheet1.xml" }
        return target.hasPrefix("/") ? String(target.dropFirst()) : "xl/" + target
    }

    static func sharedStrings(_ archive: Archive) throws -> [String] {
        guard let entry = archive["xl/sharedStrings.xml"] else { return [] }
        var strings: [String] = []
        var current: [UInt8] = []
        var inT = false, inPhonetic = false
        let p = SAXParser(name: "sharedStrings.xml")
        p.onStart = { n, _ in
            switch n {
            case "si": current.removeAll(keepingCapacity: true)
            case "t": inT = !inPhonetic
            case "rPh": inPhonetic = true
            default: break
            }
        }
        p.onEnd = { n in
            switch n {
            case "si": strings.append(String(decoding: current, as: UTF8.self))
            case "t": inT = false
            case "rPh": inPhonetic = false
            default: break
            }
        }
        p.onText = { if inT { current.append(contentsOf: $0) } }
        _ = try archive.extract(entry, bufferSize: 1 << 18, skipCRC32: true) { data in
            try data.withUnsafeBytes { try p.feed($0) }
        }
        try p.finish()
        return strings
    }
}

public struct XLSXOptions: Sendable, Hashable {
    public var sheet: String? = nil
    public var headerRow = 1
    public var footerRows = 0
    public init() {}
}

/// Turns `<row>`/`<c>` events into rows, applying the header and footer settings.
final class SheetReader {
    let options: XLSXOptions
    let strings: [String]
    var columns: Columns? = nil
    var ready: [RawRow] = []
    var pending: [RawRow] = []
    var emitted = 0
    var lastRow = 0

    private var rowNumber = 0
    private var values: [String?] = []
    private var cellColumn = 0
    private var cellType = ""
    private var cellText: [UInt8] = []
    private var inValue = false
    private var nextColumn = 0

    init(options: XLSXOptions, strings: [String]) { self.options = options; self.strings = strings }

    func start(_ name: String, _ attrs: [SAXParser.Attribute]) {
        switch name {
        case "row":
            rowNumber = attrs.first { $0.name == "r" }.flatMap { Int($0.value) } ?? (lastRow + 1)
            values.removeAll(keepingCapacity: true)
            nextColumn = 0
        case "c":
            cellType = attrs.first { $0.name == "t" }?.value ?? "n"
            cellColumn = attrs.first { $0.name == "r" }.flatMap { Self.columnIndex($0.value) } ?? nextColumn
            cellText.removeAll(keepingCapacity: true)
        case "v", "t":
            inValue = true
        default: break
        }
    }

    func text(_ b: UnsafeBufferPointer<UInt8>) { if inValue { cellText.append(contentsOf: b) } }

    func end(_ name: String) {
        switch name {
        case "v", "t": inValue = false
        case "c":
            let raw = String(decoding: cellText, as: UTF8.self)
            var v: String? = raw
            if cellType == "s" { v = Int(raw).flatMap { $0 >= 0 && $0 < strings.count ? strings[$0] : nil } }
            if cellType == "b" { v = raw == "1" ? "true" : "false" }
            if raw.isEmpty && cellType != "s" { v = nil }
            if cellColumn >= values.count { values += Array(repeating: nil, count: cellColumn - values.count + 1) }
            values[cellColumn] = v
            nextColumn = cellColumn + 1
        case "row":
            lastRow = rowNumber
            endRow()
        default: break
        }
    }

    private func endRow() {
        if values.allSatisfy({ $0 == nil || $0!.trimmingCharacters(in: .whitespaces).isEmpty }) { return }
        if rowNumber < options.headerRow { return }
        if columns == nil {
            if options.headerRow == 0 {
                columns = Columns((0..<max(values.count, 1)).map { "$\($0 + 1)" }, fixed: true)
            } else {
                columns = Columns(values.enumerated().map { i, v in
                    let t = FieldParser.trim(v ?? "")
                    return t.isEmpty ? "$\(i + 1)" : t
                }, fixed: true)
                return
            }
        }
        let row = RawRow(number: rowNumber, columns: columns!, values: values)
        if options.footerRows > 0 {
            pending.append(row)
            if pending.count > options.footerRows { ready.append(pending.removeFirst()) }
        } else {
            ready.append(row)
        }
    }

    func flushFooter() { pending.removeAll() }

    func drain(_ emit: (RawRow) throws -> Void) throws {
        if ready.isEmpty { return }
        let rows = ready
        ready.removeAll(keepingCapacity: true)
        for r in rows { emitted += 1; try emit(r) }
    }

    /// `B12` → 1, `AA3` → 26.
    static func columnIndex(_ ref: String) -> Int? {
        var n = 0
        var any = false
        for u in ref.unicodeScalars {
            guard u.value >= 65 && u.value <= 90 else { break }
            n = n * 26 + Int(u.value - 64); any = true
        }
        return any ? n - 1 : nil
    }
}

extension XLSXOptions: FormatOptions {
    public static let name = "xlsx"
    public static let optionsHelp: [(key: String, help: String)] = [
        ("sheet", "工作表名；省略则读第一个"),
        ("header_row", "表头在第几行（默认 1）"),
        ("footer_rows", "末尾几行不是数据，默认 0"),
    ]

    public static func make(section: ConfigNode?, format: ConfigNode, reader r: ConfigReader) -> XLSXOptions? {
        var o = XLSXOptions()
        guard let n = section else { return o }
        let m = r.mapping(n, what: "xlsx", allowed: optionsHelp.map(\.key))
        o.sheet = r.string(m["sheet"]?.0, what: "xlsx.sheet")
        if let h = r.int(m["header_row"]?.0, what: "xlsx.header_row", range: 0...1000) { o.headerRow = h }
        if let f = r.int(m["footer_rows"]?.0, what: "xlsx.footer_rows", range: 0...1000) { o.footerRows = f }
        return o
    }

    public func makeDecoder() -> any RowDecoder { XLSXDecoder(options: self) }
}
