/// A streaming JSON decoder: finds the array of records at `json.records_at` (e.g. `data.list`)
/// and emits each element as a row as soon as it is complete, holding at most one record and
/// the unread tail of a chunk in memory, however large the document.
///
/// Values outside the records array are skipped, except the scalar at `json.cursor_at`, kept
/// for cursor pagination. Malformed JSON fails the document (and so the pull, which leaves the
/// store as it was); a record that is itself malformed cannot be told apart from the document.
public struct JSONStreamDecoder: RowDecoder {
    enum Expect { case value, valueOrEnd, key, keyOrEnd, colon, commaOrEnd, done }
    enum Purpose { case record, key, scalar }
    struct Frame { var isArray: Bool; var key = ""; var index = 0; var records = false }

    let options: JSONOptions
    private var buf: [UInt8] = []
    private var pos = 0
    private var stack: [Frame] = []
    private var expect: Expect = .value
    private var purpose: Purpose? = nil
    private var capStart = 0, capScan = 0, capDepth = 0
    private var capInString = false, capEscape = false
    private var rows = 0
    private var cursor: String? = nil
    private var foundRecords = false
    private var arraysSeen: [String] = []
    private var consumedBefore = 0
    static let maxRecordBytes = 64 << 20
    static let maxDepth = 64

    public init(options: JSONOptions) { self.options = options }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (RawRow) throws -> Void) throws {
        buf.append(contentsOf: bytes)
        try run(final: false, emit)
        // Drop what has been read; keep an unfinished token or record.
        let keep = purpose != nil ? capStart : pos
        if keep > 0 {
            buf.removeFirst(keep)
            consumedBefore += keep
            pos -= keep; capScan -= purpose != nil ? keep : 0; capStart -= purpose != nil ? keep : 0
        }
    }

    public mutating func finish(_ emit: (RawRow) throws -> Void) throws -> DocumentInfo {
        try run(final: true, emit)
        if purpose != nil || expect != .done {
            if buf.isEmpty && consumedBefore == 0 && stack.isEmpty { throw DecodeError("JSON 文档为空") }
            throw DecodeError("JSON 文档不完整（在第 \(consumedBefore + buf.count) 字节处中断），可能传输被截断")
        }
        if !foundRecords {
            let want = options.recordsAt.isEmpty ? "顶层数组" : options.recordsAt.joined(separator: ".")
            let seen = arraysSeen.isEmpty ? "文档中没有数组" : "文档中的数组：\(arraysSeen.prefix(8).map { $0.isEmpty ? "（顶层）" : $0 }.joined(separator: ", "))"
            throw DecodeError("找不到记录数组 \(want)（json.records_at）；\(seen)")
        }
        return DocumentInfo(rows: rows, cursor: cursor)
    }

    private var path: [String] { stack.map { $0.isArray ? String($0.index) : $0.key } }

    private func fail(_ what: String) -> DecodeError {
        DecodeError("JSON 格式错误：\(what)（第 \(consumedBefore + pos + 1) 字节）")
    }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    private mutating func run(final: Bool, _ emit: (RawRow) throws -> Void) throws {
        while true {
            if purpose != nil {
                guard try scanCapture(final: final) else { return }
                try finishCapture(emit)
                continue
            }
            while pos < buf.count, Self.isSpace(buf[pos]) { pos += 1 }
            guard pos < buf.count else { return }
            let b = buf[pos]
            switch expect {
            case .value, .valueOrEnd:
                if expect == .valueOrEnd && b == UInt8(ascii: "]") { pos += 1; pop(); continue }
                if stack.last?.records == true { startCapture(.record); continue }
                if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") {
                    guard stack.count < Self.maxDepth else { throw DecodeError("JSON 嵌套超过 \(Self.maxDepth) 层") }
                    let isArray = b == UInt8(ascii: "[")
                    var f = Frame(isArray: isArray)
                    if isArray {
                        let p = path
                        f.records = p == options.recordsAt
                        if f.records { foundRecords = true }
                        if arraysSeen.count < 32 { arraysSeen.append(p.joined(separator: ".")) }
                    }
                    stack.append(f)
                    expect = isArray ? .valueOrEnd : .keyOrEnd
                    pos += 1
                } else if b == UInt8(ascii: "}") || b == UInt8(ascii: "]") || b == UInt8(ascii: ",") || b == UInt8(ascii: ":") {
                    throw fail("此处应为一个值，却是 '\(Character(Unicode.Scalar(b)))'")
                } else {
                    startCapture(.scalar)
                }
            case .key, .keyOrEnd:
                if expect == .keyOrEnd && b == UInt8(ascii: "}") { pos += 1; pop(); continue }
                guard b == UInt8(ascii: "\"") else { throw fail("此处应为带引号的键名") }
                startCapture(.key)
            case .colon:
                guard b == UInt8(ascii: ":") else { throw fail("键名后应为冒号") }
                pos += 1; expect = .value
            case .commaOrEnd:
                let isArray = stack.last!.isArray
                if b == UInt8(ascii: ",") {
                    pos += 1
                    if isArray { stack[stack.count - 1].index += 1; expect = .value } else { expect = .key }
                } else if b == (isArray ? UInt8(ascii: "]") : UInt8(ascii: "}")) {
                    pos += 1; pop()
                } else {
                    throw fail(isArray ? "数组中应为逗号或 ]" : "对象中应为逗号或 }")
                }
            case .done:
                throw fail("文档结束后还有多余内容")
            }
        }
    }

    private mutating func pop() {
        stack.removeLast()
        expect = stack.isEmpty ? .done : .commaOrEnd
    }

    private mutating func startCapture(_ p: Purpose) {
        purpose = p
        capStart = pos
        capScan = pos + 1
        capDepth = (buf[pos] == UInt8(ascii: "{") || buf[pos] == UInt8(ascii: "[")) ? 1 : 0
        capInString = buf[pos] == UInt8(ascii: "\"")
        capEscape = false
    }

    /// Advances over the captured value; true when it is complete (then `pos` is just past it).
    private mutating func scanCapture(final: Bool) throws -> Bool {
        let first = buf[capStart]
        let container = first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
        let isString = first == UInt8(ascii: "\"")
        var i = capScan
        defer { capScan = i }
        while i < buf.count {
            let b = buf[i]
            if capInString {
                if capEscape { capEscape = false }
                else if b == UInt8(ascii: "\\") { capEscape = true }
                else if b == UInt8(ascii: "\"") {
                    capInString = false
                    if isString { i += 1; pos = i; return true }
                }
            } else if container {
                if b == UInt8(ascii: "\"") { capInString = true }
                else if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") {
                    capDepth += 1
                    if capDepth > Self.maxDepth { throw DecodeError("JSON 嵌套超过 \(Self.maxDepth) 层") }
                } else if b == UInt8(ascii: "}") || b == UInt8(ascii: "]") {
                    capDepth -= 1
                    if capDepth == 0 { i += 1; pos = i; return true }
                }
            } else if Self.isSpace(b) || b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") {
                pos = i; return true
            }
            i += 1
        }
        if i - capStart > Self.maxRecordBytes {
            throw DecodeError("一条 JSON 记录超过 \(Self.maxRecordBytes >> 20) MB")
        }
        if final && !container && !isString { pos = i; return true }
        return false
    }

    private mutating func finishCapture(_ emit: (RawRow) throws -> Void) throws {
        let p = purpose!
        purpose = nil
        let start = capStart, end = pos
        switch p {
        case .record:
            let pairs = try buf.withUnsafeBytes { try JSONValueParser.flatten(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
            rows += 1
            try emit(jsonRow(number: rows, pairs: pairs))
            expect = .commaOrEnd
        case .key:
            let pairs = try buf.withUnsafeBytes { try JSONValueParser.flatten(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
            stack[stack.count - 1].key = pairs.first?.1 ?? ""
            expect = .colon
        case .scalar:
            let pairs = try buf.withUnsafeBytes { try JSONValueParser.flatten(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
            if let c = options.cursorAt, path == c { cursor = pairs.first?.1 }
            expect = stack.isEmpty ? .done : .commaOrEnd
        }
    }
}

public struct JSONOptions: Sendable, Hashable {
    /// Dotted path to the array of records, e.g. `data.list`; empty: the document is the array.
    public var recordsAt: [String] = []
    /// Dotted path to a "next page" cursor in each page, for cursor pagination.
    public var cursorAt: [String]? = nil
    public init() {}
}

extension JSONOptions: FormatOptions {
    public static let name = "json"
    public static let optionsHelp: [(key: String, help: String)] = [
        ("records_at", "记录数组所在的路径，如 data.list；省略表示整个文档就是数组"),
        ("cursor_at", "下一页游标所在的路径，如 data.next（游标分页用）"),
    ]

    public static func make(section: ConfigNode?, format: ConfigNode, reader r: ConfigReader) -> JSONOptions? {
        var o = JSONOptions()
        guard let n = section else { return o }
        let m = r.mapping(n, what: "json", allowed: optionsHelp.map(\.key))
        if let p = r.string(m["records_at"]?.0, what: "json.records_at") { o.recordsAt = p.split(separator: ".").map(String.init) }
        if let p = r.string(m["cursor_at"]?.0, what: "json.cursor_at") { o.cursorAt = p.split(separator: ".").map(String.init) }
        return o
    }

    public func makeDecoder() -> any RowDecoder { JSONStreamDecoder(options: self) }
}
