import Foundation

/// Turns one source text into a typed value for a field, or says why it cannot (in Chinese,
/// the way the quarantine shows it: "日期 2026-13-45 无效").
public enum FieldParser {
    public enum Outcome: Sendable, Equatable {
        case success(Value)
        case failure(String)
    }

    /// `fromSource` is false for a field's `value` or `default`, which the operator wrote in the
    /// field's own terms: they skip `extract`, and `map` applies only when it lists them.
    public static func parse(_ raw: String, _ spec: FieldSpec, fromSource: Bool = true) -> Outcome {
        var text = trim(raw)
        if !fromSource {
            if let map = spec.codeMap, let v = map[text] ?? map[Suggest.normalize(text)] { text = v }
            var plain = spec
            plain.extract = nil
            plain.codeMap = nil
            return parse(text, plain)
        }
        if let box = spec.extract {
            let ns = text as NSString
            guard let m = box.regex.firstMatch(in: text, range: NSRange(location: 0, length: ns.length)),
                  m.range(at: 1).location != NSNotFound else {
                return .failure("\"\(text)\" 不符合提取规则 \(box.pattern)")
            }
            text = ns.substring(with: m.range(at: 1))
        }
        if let map = spec.codeMap {
            if let v = map[text] ?? map[Suggest.normalize(text)] { text = v }
            else if text.isEmpty { return .success(.null) }
            else {
                let keys = map.keys.sorted().prefix(12).joined(separator: ", ")
                return .failure("值 \"\(text)\" 不在代码表中（可选：\(keys)）")
            }
        }
        if text.isEmpty { return .success(.null) }
        switch spec.type {
        case .text:
            return .success(.text(text))
        case .code:
            if !spec.allowedValues.isEmpty && !spec.allowedValues.contains(text) {
                return .failure("值 \"\(text)\" 不是允许的取值（\(spec.allowedValues.joined(separator: ", "))）")
            }
            return .success(.text(text))
        case .residentID:
            do { return .success(.text(try ResidentID(parsing: text).value)) }
            catch { return .failure(error.message) }
        case .region:
            let digits = text.unicodeScalars.contains(where: isBlank) ? String(String.UnicodeScalarView(text.unicodeScalars.filter { !isBlank($0) })) : text
            guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), [6, 9, 12].contains(digits.count) else {
                return .failure("行政区划代码 \"\(text)\" 应为 6、9 或 12 位数字")
            }
            return .success(.text(digits))
        case .date, .datetime:
            let formats = spec.formats.isEmpty ? DateFormat.defaults : spec.formats
            for f in formats {
                if let (d, secs) = f.parse(text) {
                    return .success(spec.type == .date ? .date(d) : .datetime(d, secs))
                }
            }
            let hint = spec.formats.isEmpty ? "" : "（格式 \(spec.formats.map(\.description).joined(separator: " 或 "))）"
            return .failure("日期 \(text) 无效\(hint)")
        case .money:
            let scale = spec.moneyScale > 0 ? spec.moneyScale : 1
            guard var fen = Money.parse(text, scale: scale) else { return .failure("金额 \"\(text)\" 无效") }
            if spec.moneyScale < 0 {
                // Amount written in 分 or 角: the parsed "yuan" figure is really that unit.
                let div = -spec.moneyScale
                fen = (fen + (fen >= 0 ? div / 2 : -div / 2)) / div
            }
            if fen < 0 && !spec.allowNegative { return .failure("金额 \(text) 为负数（若允许负数，在映射中写 negative: allow）") }
            return .success(.money(fen))
        case .integer:
            var t = text.contains(",") ? text.replacingOccurrences(of: ",", with: "") : text
            if let dot = t.firstIndex(of: "."), t[t.index(after: dot)...].allSatisfy({ $0 == "0" }) { t = String(t[..<dot]) }
            guard let n = Int64(t) else { return .failure("整数 \"\(text)\" 无效") }
            return .success(.integer(n))
        case .decimal:
            let t = text.contains(",") ? text.replacingOccurrences(of: ",", with: "") : text
            guard let d = Double(t), d.isFinite else { return .failure("数值 \"\(text)\" 无效") }
            return .success(.decimal(d))
        case .bool:
            switch text.lowercased() {
            case "是", "有", "true", "yes", "y", "1", "√", "t": return .success(.bool(true))
            case "否", "无", "false", "no", "n", "0", "×", "f": return .success(.bool(false))
            default: return .failure("\"\(text)\" 不是 是/否")
            }
        }
    }

    /// Strips ASCII and full-width spaces, BOMs and zero-width spaces at both ends.
    public static func trim(_ s: String) -> String {
        // Fast path: most values start and end with a visible ASCII character.
        let visible = s.utf8.withContiguousStorageIfAvailable { b in
            guard let f = b.first, let l = b.last else { return false }
            return f > 0x20 && f < 0x7F && l > 0x20 && l < 0x7F
        }
        if visible == true { return s }
        var u = Substring(s).unicodeScalars[...]
        while let f = u.first, isBlank(f) { u = u.dropFirst() }
        while let l = u.last, isBlank(l) { u = u.dropLast() }
        return u.count == s.unicodeScalars.count ? s : String(u)
    }

    /// Spaces that exports leave around values (without a Unicode property lookup per character).
    @inline(__always) static func isBlank(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C, 0xA0, 0x3000, 0xFEFF, 0x200B, 0x2002...0x200A: return true
        default: return false
        }
    }
}

/// FNV-1a 64-bit, used to fingerprint raw rows and record contents (not for security).
public enum Hashing {
    public static func fnv1a<S: Sequence>(_ bytes: S, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 where S.Element == UInt8 {
        var h = seed
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return h
    }
    public static func hex(_ text: String) -> String { hex(fnv1a(text.utf8)) }
    public static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
    /// Fingerprint of a list of optional texts, separators included so ["ab",""] ≠ ["a","b"].
    public static func fingerprint(_ values: [String?]) -> String { hex(fingerprint64(values)) }

    public static func fingerprint64(_ values: [String?]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in values {
            if var v {
                v.withUTF8 { for b in $0 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 } }
                h = (h ^ 0x1F) &* 0x0000_0100_0000_01b3
            } else {
                h = (h ^ 0x1E) &* 0x0000_0100_0000_01b3
            }
        }
        return h
    }

    /// Fingerprint of a record's typed values (what tells an update from a repeat), computed
    /// from the values themselves rather than their text forms.
    public static func fingerprint64(_ values: [Value]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        @inline(__always) func byte(_ b: UInt8) { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        @inline(__always) func word(_ w: UInt64) { var w = w; for _ in 0..<8 { byte(UInt8(truncatingIfNeeded: w)); w >>= 8 } }
        for v in values {
            switch v {
            case .null: byte(0)
            case .text(var s): byte(1); s.withUTF8 { for b in $0 { byte(b) } }; byte(0x1F)
            case .integer(let i): byte(2); word(UInt64(bitPattern: i))
            case .decimal(let d): byte(3); word(d.bitPattern)
            case .money(let f): byte(4); word(UInt64(bitPattern: f))
            case .date(let d): byte(5); word(UInt64(bitPattern: Int64(d.year * 10_000 + d.month * 100 + d.day)))
            case .datetime(let d, let s): byte(6); word(UInt64(bitPattern: Int64(d.year * 10_000 + d.month * 100 + d.day))); word(UInt64(bitPattern: Int64(s)))
            case .bool(let b): byte(b ? 8 : 7)
            }
        }
        return h
    }

    /// Writes the 16 lowercase hex digits of `v` into `buffer` (at least 16 bytes).
    @inlinable public static func hex(_ v: UInt64, into buffer: UnsafeMutablePointer<UInt8>) {
        let digits: StaticString = "0123456789abcdef"
        let d = digits.utf8Start
        for i in 0..<16 { buffer[15 - i] = d[Int((v >> (UInt64(i) * 4)) & 0xF)] }
    }
}
