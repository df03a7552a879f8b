/// A position in a text file an operator edits: 1-based line and column (in characters).
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file; self.line = line; self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// One mistake in a mapping, record type or rule file: where, what, and how to fix it.
/// Printed as `FILE:LINE:COLUMN: message`.
public struct Diagnostic: Error, Hashable, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    public init(_ location: SourceLocation, _ message: String) {
        self.location = location; self.message = message
    }
    public var description: String { "\(location): \(message)" }
}

/// Every mistake found in one or more files; loading reports all of them, not just the first.
public struct DiagnosticList: Error, Sendable, CustomStringConvertible {
    public var items: [Diagnostic]
    public init(_ items: [Diagnostic]) { self.items = items }
    public var description: String { items.map(\.description).joined(separator: "\n") }
}

/// Suggests the closest candidate to a misspelt name ("did you mean 证件号码?").
public enum Suggest {
    /// The candidate nearest to `word` by edit distance, if it is near enough to be a likely typo.
    public static func closest(to word: String, in candidates: some Sequence<String>) -> String? {
        let w = normalize(word)
        var best: (String, Int)? = nil
        for c in candidates {
            let n = normalize(c)
            if n == w { return c }
            var d = distance(Array(w), Array(n))
            // A header that contains the word (or the other way round) is a strong hint: 身份证 → 身份证号.
            if !w.isEmpty, !n.isEmpty, n.contains(w) || w.contains(n) { d = min(d, 1) }
            if best == nil || d < best!.1 { best = (c, d) }
        }
        guard let (c, d) = best else { return nil }
        let limit = max(1, min(3, max(w.count, c.count) / 3))
        return d <= limit ? c : nil
    }

    /// Lower-case, without spaces, underscores or full-width forms, so 证件 号码 and 证件号码 compare equal.
    public static func normalize(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.compactMap { u -> Unicode.Scalar? in
            if FieldParser.isBlank(u) || u == "_" || u == "-" { return nil }
            if u.value >= 0xFF01 && u.value <= 0xFF5E { return Unicode.Scalar(u.value - 0xFEE0) }
            return u
        })).lowercased()
    }

    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }

    /// ` (是否应为 "x"？)` or empty.
    static func hint(_ word: String, _ candidates: some Sequence<String>) -> String {
        guard let s = closest(to: word, in: candidates) else { return "" }
        return "，是否应为 \"\(s)\"？"
    }
}
