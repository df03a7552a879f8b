/// The column names of a decoded document, shared by all its rows so lookups resolve once.
///
/// Sendable: every property is a `let` set in `init`; rows read it from the mapping thread.
public final class Columns: @unchecked Sendable {
    /// Names as the source wrote them (CSV header text, JSON paths).
    public let names: [String]
    /// Normalized name (see `Suggest.normalize`) → position; also `$1`, `$2`, … by position.
    let index: [String: Int]
    /// True for tabular sources whose every row has these columns (CSV, XLSX): a mapping that
    /// names a column not among them is a feed-level error, not a row-level one.
    public let fixed: Bool

    public init(_ names: [String], fixed: Bool) {
        self.names = names
        self.fixed = fixed
        var idx: [String: Int] = [:]
        for (i, n) in names.enumerated() {
            let k = Suggest.normalize(n)
            if idx[k] == nil { idx[k] = i }
            idx["$\(i + 1)"] = i
        }
        index = idx
    }

    /// Position of a column named as in a mapping's `from:`.
    public func position(of name: String) -> Int? { index[Suggest.normalize(name)] ?? index[name] }
}

/// One source row: its position in the feed, its raw values, and any problem the decoder
/// found with it (bad encoding, ragged line), which sends it to quarantine.
public struct RawRow: Sendable {
    /// Row number as an operator finds it: the line/row in the file (header and title rows
    /// counted, like Excel's row numbers) or the record's ordinal in a JSON array.
    public var number: Int
    public var columns: Columns
    public var values: [String?]
    public var problem: String?

    public init(number: Int, columns: Columns, values: [String?], problem: String? = nil) {
        self.number = number; self.columns = columns; self.values = values; self.problem = problem
    }

    public func value(at i: Int) -> String? { i < values.count ? values[i] : nil }

    /// The row as column → value pairs (non-empty values), for quarantine and `mapping try`.
    public var pairs: [(String, String)] {
        var out: [(String, String)] = []
        for (i, v) in values.enumerated() {
            guard let v else { continue }
            out.append((i < columns.names.count ? columns.names[i] : "$\(i + 1)", v))
        }
        return out
    }
}

/// What a decoder learnt about one document besides its rows (for pagination).
public struct DocumentInfo: Sendable {
    public var rows: Int
    /// The next-page cursor found at `json.cursor_at`, if any.
    public var cursor: String?
    public init(rows: Int, cursor: String? = nil) { self.rows = rows; self.cursor = cursor }
}

/// A problem with a whole document (not one row): malformed JSON, an undecodable header.
/// The pull fails and the store is left as it was.
public struct DecodeError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A streaming decoder: bytes in, rows out, never holding the whole document.
///
/// Implement `feed` to consume any number of bytes (a chunk may end anywhere, even inside a
/// multi-byte character) and `finish` to flush the rest when the document ends.
public protocol RowDecoder {
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (RawRow) throws -> Void) throws
    mutating func finish(_ emit: (RawRow) throws -> Void) throws -> DocumentInfo
}
