/// Parses one JSON value from bytes into flat column → text pairs: nested objects become dotted
/// paths (`address.village`), array items get their index (`members.0.name`). Numbers keep their
/// exact text, so an 18-digit ID sent as a number is not rounded through a Double.
struct JSONValueParser {
    let bytes: UnsafeRawBufferPointer
    var i: Int
    let maxDepth = 64

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes; i = 0 }

    static func flatten(_ bytes: UnsafeRawBufferPointer) throws -> [(String, String?)] {
        var p = JSONValueParser(bytes)
        var out: [(String, String?)] = []
        p.skipSpace()
        try p.value(path: "", depth: 0, into: &out)
        p.skipSpace()
        if p.i != bytes.count { throw DecodeError("JSON 值之后还有多余内容（第 \(p.i + 1) 字节）") }
        return out
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    func fail(_ what: String) -> DecodeError { DecodeError("JSON 格式错误：\(what)（第 \(i + 1) 字节）") }

    mutating func value(path: String, depth: Int, into out: inout [(String, String?)]) throws {
        guard depth <= maxDepth else { throw DecodeError("JSON 嵌套超过 \(maxDepth) 层") }
        guard i < bytes.count else { throw fail("内容不完整") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1; skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("此处应为键名") }
                let key = try string()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("键名后应为冒号") }
                i += 1; skipSpace()
                try value(path: path.isEmpty ? key : path + "." + key, depth: depth + 1, into: &out)
                skipSpace()
                guard i < bytes.count else { throw fail("对象没有结束") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return }
                throw fail("对象中应为逗号或 }")
            }
        case UInt8(ascii: "["):
            i += 1; skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return }
            var n = 0
            while true {
                skipSpace()
                try value(path: path.isEmpty ? String(n) : path + "." + String(n), depth: depth + 1, into: &out)
                n += 1
                skipSpace()
                guard i < bytes.count else { throw fail("数组没有结束") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return }
                throw fail("数组中应为逗号或 ]")
            }
        case UInt8(ascii: "\""):
            out.append((path, try string()))
        default:
            out.append((path, try scalar()))
        }
    }

    /// A literal (number, true, false, null); null gives nil.
    mutating func scalar() throws -> String? {
        let start = i
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") || b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { break }
            i += 1
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        switch text {
        case "null": return nil
        case "true", "false": return text
        default:
            guard !text.isEmpty, text.allSatisfy({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." || $0 == "e" || $0 == "E" }),
                  Double(text) != nil else { throw fail("无法识别的值 \"\(text.prefix(40))\"") }
            return text
        }
    }

    mutating func string() throws -> String {
        i += 1  // opening quote
        var buf: [UInt8] = []
        var runStart = i
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                buf.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<i]))
                i += 1
                guard let s = String(validating: buf, as: UTF8.self) else { throw fail("字符串不是有效的 UTF-8") }
                return s
            }
            if b == UInt8(ascii: "\\") {
                buf.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<i]))
                i += 1
                guard i < bytes.count else { throw fail("转义不完整") }
                let e = bytes[i]; i += 1
                switch e {
                case UInt8(ascii: "n"): buf.append(0x0A)
                case UInt8(ascii: "t"): buf.append(0x09)
                case UInt8(ascii: "r"): buf.append(0x0D)
                case UInt8(ascii: "b"): buf.append(0x08)
                case UInt8(ascii: "f"): buf.append(0x0C)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800...0xDBFF).contains(code), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("无效的 UTF-16 代理对") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("无效的 \\u 转义") }
                    buf.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: buf.append(e)
                }
                runStart = i
                continue
            }
            if b < 0x20 { throw fail("字符串中有未转义的控制字符") }
            i += 1
        }
        throw fail("字符串没有结束引号")
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("\\u 转义不完整") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]; i += 1
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x37)
            case 0x61...0x66: d = UInt32(c - 0x57)
            default: throw fail("\\u 转义中有非十六进制字符")
            }
            v = v * 16 + d
        }
        return v
    }
}

/// Builds a row from flattened pairs; each JSON record has its own columns.
func jsonRow(number: Int, pairs: [(String, String?)]) -> RawRow {
    RawRow(number: number, columns: Columns(pairs.map(\.0), fixed: false), values: pairs.map(\.1))
}
