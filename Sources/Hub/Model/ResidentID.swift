import Foundation

/// A resident identity number (居民身份证号码, GB 11643-1999), always held in its 18-character form.
///
/// Parsing accepts what department exports really contain: full-width digits, stray spaces,
/// a lowercase `x`, and the legacy 15-digit form, which is converted by inserting the century
/// "19" and computing the check character. The address code is not checked against today's
/// list: a retired code (411023) is still a valid number.
///
/// ```swift
/// let id = try ResidentID(parsing: "11010519491231002x")
/// id.masked  // "110105********002X"
/// ```
public struct ResidentID: Hashable, Sendable, CustomStringConvertible {
    /// The 18-character canonical form, check character upper-case.
    public let value: String

    /// Why a text is not a valid resident ID. `message` is the Chinese reason shown to operators.
    public enum Problem: Error, Equatable, Sendable {
        case empty
        case badLength(Int)
        case badCharacter(Character)
        case badBirthDate(String)
        case badCheckCharacter(expected: Character, found: Character)

        public var message: String {
            switch self {
            case .empty: return "身份证号为空"
            case .badLength(let n): return "身份证号长度为 \(n) 位，应为 18 位或 15 位"
            case .badCharacter(let c): return "身份证号含有非法字符 '\(c)'"
            case .badBirthDate(let d): return "身份证号中的出生日期 \(d) 无效"
            case .badCheckCharacter(let e, let f): return "身份证号校验位错误（应为 \(e)，实为 \(f)）"
            }
        }
    }

    static let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    static let checkCharacters: [Character] = ["1", "0", "X", "9", "8", "7", "6", "5", "4", "3", "2"]

    /// Computes the check character for the first 17 digits.
    public static func checkCharacter(for first17: [UInt8]) -> Character {
        var sum = 0
        for i in 0..<17 { sum += Int(first17[i]) * weights[i] }
        return checkCharacters[sum % 11]
    }

    /// Parses and validates; throws `Problem` with the reason.
    public init(parsing text: String) throws(Problem) {
        if let fast = Self.canonical18(text) { value = fast; return }
        var digits: [UInt8] = []
        digits.reserveCapacity(18)
        var last: Character? = nil
        var count = 0
        for scalar in text.unicodeScalars {
            var v = scalar.value
            // Full-width forms (０-９, Ｘ, ｘ) to ASCII; skip every kind of space.
            if v >= 0xFF10 && v <= 0xFF19 { v = v - 0xFF10 + 0x30 }
            if v == 0xFF38 || v == 0xFF58 { v = 0x58 }
            if v == 0x20 || v == 0x3000 || v == 0x09 || v == 0xA0 || v == 0xFEFF || v == 0x200B { continue }
            count += 1
            if v >= 0x30 && v <= 0x39 {
                if count <= 18 { digits.append(UInt8(v - 0x30)) }
            } else if v == 0x58 || v == 0x78 {
                last = "X"
                if count != 18 { throw .badCharacter(Character(scalar)) }
            } else {
                throw .badCharacter(Character(scalar))
            }
        }
        if count == 0 { throw .empty }
        if count == 15 && last == nil {
            // Legacy form: 6-digit address, YYMMDD, 3-digit sequence; century is 19.
            let d = Array(digits[0..<6]) + [1, 9] + Array(digits[6..<15])
            try Self.checkBirthDate(d)
            value = String(decoding: d.map { $0 + 0x30 }, as: UTF8.self) + String(Self.checkCharacter(for: d))
            return
        }
        if count != 18 { throw .badLength(count) }
        let first17 = Array(digits.prefix(17))
        try Self.checkBirthDate(first17)
        let expected = Self.checkCharacter(for: first17)
        let found: Character = last ?? Character(String(digits[17]))
        if expected != found { throw .badCheckCharacter(expected: expected, found: found) }
        value = String(decoding: first17.map { $0 + 0x30 }, as: UTF8.self) + String(found)
    }

    /// The common case without allocations: 18 ASCII characters, valid as written (upper-case
    /// check character). Anything else — and every invalid number — takes the full path,
    /// which says what is wrong.
    @inline(__always) private static func canonical18(_ text: String) -> String? {
        let utf8 = text.utf8
        guard utf8.count == 18 else { return nil }
        return utf8.withContiguousStorageIfAvailable { b -> String? in
            var sum = 0
            for i in 0..<17 {
                let c = b[i]
                guard c >= 0x30, c <= 0x39 else { return nil }
                sum += Int(c - 0x30) * weights[i]
            }
            @inline(__always) func n(_ i: Int) -> Int { Int(b[i] - 0x30) }
            let year = n(6) * 1000 + n(7) * 100 + n(8) * 10 + n(9), month = n(10) * 10 + n(11), day = n(12) * 10 + n(13)
            guard year >= 1880, year <= 2100, CivilDate.isValid(year: year, month: month, day: day) else { return nil }
            return b[17] == checkCharacters[sum % 11].asciiValue ? text : nil
        } ?? nil
    }

    private static func checkBirthDate(_ d: [UInt8]) throws(Problem) {
        let year = Int(d[6]) * 1000 + Int(d[7]) * 100 + Int(d[8]) * 10 + Int(d[9])
        let month = Int(d[10]) * 10 + Int(d[11])
        let day = Int(d[12]) * 10 + Int(d[13])
        guard year >= 1880, year <= 2100, CivilDate.isValid(year: year, month: month, day: day) else {
            throw .badBirthDate(d[6..<14].map { String($0) }.joined())
        }
    }

    /// First 6 and last 4 characters, the rest masked: `410181********1234`.
    public var masked: String { Self.mask(value) }

    /// Masks any ID-like text the same way (first 6 + last 4), for displays and logs.
    public static func mask(_ text: String) -> String {
        let chars = Array(text)
        guard chars.count > 10 else { return String(repeating: "*", count: chars.count) }
        return String(chars[0..<6]) + String(repeating: "*", count: chars.count - 10) + String(chars[(chars.count - 4)...])
    }

    /// Masks a value that looks like an ID number (15 or 18 characters, digits with an optional
    /// final X), whatever column it came in; other text is returned as it is.
    public static func maskIfLikeID(_ text: String) -> String {
        let t = text.trimmingCharacters(in: .whitespaces)
        let chars = Array(t)
        guard chars.count == 15 || chars.count == 18,
              chars.dropLast().allSatisfy({ $0.isASCII && $0.isNumber }),
              let last = chars.last, (last.isASCII && last.isNumber) || last == "X" || last == "x" else { return text }
        return mask(t)
    }

    /// Masks every run of 18 or more digits (an ID number's final X included) inside a text, as
    /// `mask` does: an ID number within a longer number — a second-generation disability
    /// certificate number is the holder's ID number plus two digits — or in a sentence, a bank
    /// card. Shorter numbers (amounts, dates, household and region codes) are left as they are.
    public static func maskEmbedded(_ text: String) -> String {
        var out = ""
        var run = ""
        func flush() {
            out += run.count >= 18 ? mask(run) : run
            run = ""
        }
        for ch in text {
            if ch.isASCII && (ch.isNumber || ((ch == "X" || ch == "x") && !run.isEmpty)) {
                run.append(ch)
            } else {
                flush()
                out.append(ch)
            }
        }
        flush()
        return out
    }

    /// The 6-digit address code (行政区划代码) at registration.
    public var addressCode: String { String(value.prefix(6)) }
    /// Birth date as `yyyy-MM-dd`.
    public var birthDate: String {
        let c = Array(value)
        return String(c[6..<10]) + "-" + String(c[10..<12]) + "-" + String(c[12..<14])
    }
    /// Sex from the sequence number: odd male, even female.
    public var isMale: Bool { Int(String(Array(value)[16]))! % 2 == 1 }

    public var description: String { masked }
}
