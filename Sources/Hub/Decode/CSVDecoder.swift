/// A streaming RFC 4180 CSV decoder that works on bytes: quoted fields with embedded commas,
/// quotes and newlines, CRLF or LF, a UTF-8 BOM, any one-byte delimiter, a title above the
/// header, UTF-8 or GB18030/GBK text decided once from the header (`auto`) or as configured.
///
/// Splitting happens before decoding, which is safe for both encodings: no byte of a
/// multi-byte GB18030 or UTF-8 character equals `,` `"` CR or LF. A row whose bytes are not
/// valid in the encoding is sent to quarantine on its own; the other rows go on.
public struct CSVDecoder: RowDecoder {
    let options: CSVOptions
    private var fieldBytes: [UInt8] = []
    private var fieldEnds: [Int] = []
    private var inQuotes = false
    private var quoteSeen = false    // a quote inside a quoted field: either "" or the closing one
    private var fieldStarted = false // any byte in the current field (to tell "" from empty)
    private var lastWasCR = false
    private var atStart = true
    private var bomChecked: [UInt8] = []
    private var recordNumber = 0
    private var recordStartedQuoted = false
    private var columns: Columns? = nil
    private var encoding: CSVOptions.Encoding
    private var gb: GB18030Decoder? = nil
    private var pending: [RawRow] = []  // held back for footer_rows
    private var emitted = 0
    private var stray = false

    public init(options: CSVOptions) {
        self.options = options
        self.encoding = options.encoding == .gbk ? .gb18030 : options.encoding
        fieldBytes.reserveCapacity(4096)
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (RawRow) throws -> Void) throws {
        var start = 0
        if atStart {
            // Strip a UTF-8 BOM even when it arrives split across chunks.
            while bomChecked.count < 3 && start < bytes.count {
                bomChecked.append(bytes[start]); start += 1
                let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
                if bomChecked != Array(bom.prefix(bomChecked.count)) {
                    atStart = false
                    let replay = bomChecked
                    bomChecked = []
                    try replay.withUnsafeBytes { try consume($0, from: 0, emit) }
                    break
                }
            }
            if atStart && bomChecked.count == 3 { atStart = false; bomChecked = []; if encoding == .auto { encoding = .utf8 } }
            if atStart { return }
        }
        try consume(bytes, from: start, emit)
    }

    private mutating func consume(_ bytes: UnsafeRawBufferPointer, from start: Int, _ emit: (RawRow) throws -> Void) throws {
        let delim = options.delimiter, quote = options.quote
        var i = start
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            i += 1
            if inQuotes {
                if quoteSeen {
                    quoteSeen = false
                    if b == quote { fieldBytes.append(quote); continue }
                    inQuotes = false
                    // fall through to handle b outside quotes
                } else if b == quote {
                    quoteSeen = true
                    continue
                } else {
                    fieldBytes.append(b)
                    continue
                }
            }
            if b == delim {
                endField()
                lastWasCR = false
            } else if b == 0x0A {
                if lastWasCR { lastWasCR = false; continue }
                try endRecord(emit)
            } else if b == 0x0D {
                try endRecord(emit)
                lastWasCR = true
            } else if b == quote && !fieldStarted {
                inQuotes = true
                fieldStarted = true
                lastWasCR = false
            } else {
                // A quote in the middle of an unquoted field is kept as text (lenient, as Excel is).
                fieldBytes.append(b)
                fieldStarted = true
                lastWasCR = false
            }
        }
        // A quote at the very end of a chunk stays pending in `quoteSeen`.
    }

    private mutating func endField() {
        fieldEnds.append(fieldBytes.count)
        fieldStarted = false
    }

    private mutating func endRecord(_ emit: (RawRow) throws -> Void) throws {
        endField()
        recordNumber += 1
        defer { fieldBytes.removeAll(keepingCapacity: true); fieldEnds.removeAll(keepingCapacity: true) }
        // Skip blank lines: one empty field.
        if fieldEnds.count == 1 && fieldEnds[0] == 0 { return }
        if recordNumber < options.headerRow { return }  // title rows above the header
        if columns == nil {
            if options.headerRow == 0 {
                columns = Columns((0..<fieldEnds.count).map { "$\($0 + 1)" }, fixed: true)
            } else {
                try readHeader()
                return
            }
        }
        let row = makeRow()
        if options.footerRows > 0 {
            pending.append(row)
            if pending.count > options.footerRows { try emit(pending.removeFirst()); emitted += 1 }
        } else {
            try emit(row); emitted += 1
        }
    }

    private mutating func readHeader() throws {
        let raw = fieldBytes.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[0..<fieldBytes.count]) }
        if encoding == .auto {
            encoding = TextBytes.utf8(raw) != nil ? .utf8 : .gb18030
        }
        var names: [String] = []
        var start = 0
        for end in fieldEnds {
            let slice = fieldBytes.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[start..<end]) }
            guard let s = decodeText(slice) else {
                throw DecodeError("第 \(recordNumber) 行（表头）无法按 \(encoding.rawValue) 解码；请检查 csv.encoding（中文导出常为 gb18030，其他多为 utf-8）")
            }
            let name = FieldParser.trim(s)
            names.append(name.isEmpty ? "$\(names.count + 1)" : name)
            start = end
        }
        columns = Columns(names, fixed: true)
    }

    private mutating func decodeText(_ b: UnsafeRawBufferPointer) -> String? {
        switch encoding {
        case .gb18030, .gbk:
            if TextBytes.isASCII(b) { return String(decoding: b, as: UTF8.self) }
            if gb == nil { gb = GB18030Decoder() }
            return gb!.decode(b)
        default:
            return TextBytes.utf8(b)
        }
    }

    private mutating func makeRow() -> RawRow {
        let cols = columns!
        var values: [String?] = []
        values.reserveCapacity(fieldEnds.count)
        var problem: String? = nil
        var start = 0
        for end in fieldEnds {
            if end == start { values.append(nil); start = end; continue }
            let slice = fieldBytes.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[start..<end]) }
            // Printable ASCII (the bulk of every feed) needs neither validation nor a NUL check.
            if TextBytes.isPrintableASCII(slice) {
                values.append(String(decoding: slice, as: UTF8.self))
            } else if let s = decodeText(slice) {
                if s.utf8.contains(0) { problem = problem ?? "第 \(values.count + 1) 列含有 NUL 字符" }
                values.append(s)
            } else {
                problem = problem ?? "第 \(values.count + 1) 列（\(columnName(values.count))）的字节不是有效的 \(encoding.rawValue) 文本"
                // Keep what can be seen, so the operator can find the row.
                values.append(String(decoding: slice, as: UTF8.self))
            }
            start = end
        }
        if values.count > cols.names.count {
            let extras = values[cols.names.count...].compactMap { $0 }.filter { !FieldParser.trim($0).isEmpty }
            if !extras.isEmpty {
                problem = problem ?? "该行有 \(values.count) 列，多于表头的 \(cols.names.count) 列（可能有未加引号的分隔符）"
            }
        }
        return RawRow(number: recordNumber, columns: cols, values: values, problem: problem)
    }

    private func columnName(_ i: Int) -> String {
        guard let c = columns, i < c.names.count else { return "$\(i + 1)" }
        return c.names[i]
    }

    public mutating func finish(_ emit: (RawRow) throws -> Void) throws -> DocumentInfo {
        if atStart && !bomChecked.isEmpty {
            atStart = false
            let replay = bomChecked
            bomChecked = []
            try replay.withUnsafeBytes { try consume($0, from: 0, emit) }
        }
        if quoteSeen { quoteSeen = false; inQuotes = false }
        if inQuotes {
            // An unterminated quote swallowed the rest of the file: keep it whole, as one bad row.
            inQuotes = false
            endField()
            recordNumber += 1
            if columns != nil {
                var row = makeRow()
                row.problem = "引号未闭合：从第 \(row.number) 行起直到文件末尾都在一个带引号的字段中（文件可能被截断）"
                pending.append(row)
            }
            fieldBytes.removeAll(); fieldEnds.removeAll()
        } else if fieldStarted || !fieldBytes.isEmpty || !fieldEnds.isEmpty {
            try endRecord(emit)
        }
        // The last `footer_rows` rows are totals, not data.
        let keep = pending.count > options.footerRows ? pending.count - options.footerRows : 0
        for row in pending.prefix(keep) { try emit(row); emitted += 1 }
        pending.removeAll()
        if columns == nil && options.headerRow > 0 {
            if recordNumber == 0 { return DocumentInfo(rows: 0) }
            throw DecodeError("文件只有 \(recordNumber) 行，找不到第 \(options.headerRow) 行的表头（csv.header_row）")
        }
        return DocumentInfo(rows: emitted)
    }
}

public struct CSVOptions: Sendable, Hashable {
    public enum Encoding: String, Sendable, CaseIterable { case auto, utf8 = "utf-8", gb18030, gbk }
    public var encoding: Encoding = .auto
    /// 1-based row holding the column headers; rows above it (a title) are skipped. 0: no header,
    /// columns are then named `$1`, `$2`, ….
    public var headerRow: Int = 1
    public var delimiter: UInt8 = UInt8(ascii: ",")
    public var quote: UInt8 = UInt8(ascii: "\"")
    /// Rows at the end that are not data (a 合计 line).
    public var footerRows: Int = 0
    public init() {}
}

extension CSVOptions: FormatOptions {
    public static let name = "csv"
    public static let optionsHelp: [(key: String, help: String)] = [
        ("encoding", "utf-8、gb18030（含 GBK、GB2312）或 auto（默认：表头是有效 UTF-8 就用 UTF-8，否则 GB18030）"),
        ("header_row", "表头在第几行（默认 1）；上面的行跳过；0 表示没有表头，列名为 $1、$2…"),
        ("footer_rows", "末尾几行不是数据（如“合计”），默认 0"),
        ("delimiter", "分隔符，默认 ,；制表符写 \\t"),
        ("quote", "引号，默认 \""),
    ]

    public static func make(section: ConfigNode?, format: ConfigNode, reader r: ConfigReader) -> CSVOptions? {
        var o = CSVOptions()
        guard let n = section else { return o }
        let m = r.mapping(n, what: "csv", allowed: optionsHelp.map(\.key))
        if let e = r.oneOf(m["encoding"]?.0, what: "csv.encoding", Encoding.allCases.map(\.rawValue) + ["utf8", "GB18030", "GBK"]) {
            o.encoding = Encoding(rawValue: e.lowercased()) ?? (e == "utf8" ? .utf8 : .gb18030)
        }
        if let h = r.int(m["header_row"]?.0, what: "csv.header_row", range: 0...1000) { o.headerRow = h }
        if let f = r.int(m["footer_rows"]?.0, what: "csv.footer_rows", range: 0...1000) { o.footerRows = f }
        for key in ["delimiter", "quote"] {
            guard let (dn, _) = m[key], let s = r.string(dn, what: "csv.\(key)") else { continue }
            let v = s == "\\t" || s == "tab" ? "\t" : s
            if v.utf8.count == 1, let b = v.utf8.first, b < 0x80 {
                if key == "delimiter" { o.delimiter = b } else { o.quote = b }
            } else {
                r.error(dn.location, "csv.\(key) 应为单个 ASCII 字符（制表符写 \\t），实为 \"\(s)\"")
            }
        }
        return o
    }

    public func makeDecoder() -> any RowDecoder { CSVDecoder(options: self) }
}
