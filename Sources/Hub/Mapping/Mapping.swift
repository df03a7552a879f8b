import Foundation

/// One department feed, as an operator declared it in `Mappings/SOURCE.yaml`:
/// where to fetch it, how to decode it, and how its rows become canonical records.
public struct Mapping: Sendable {
    /// Unique id of the source, also the file name: `medical-claims`.
    public var source: String
    public var title: String
    public var department: String
    /// The connector kind (`file`, `http`, …) and its options, checked by the connector.
    public var connector: String
    public var connectorOptions: ConfigNode
    public var format: FeedFormat
    public var schedule: String?
    public var expect: DeliveryExpectation?
    /// What each source row becomes: usually one record, sometimes several (a roster row
    /// holds a person and, repeated, their household).
    public var outputs: [OutputSpec]
    /// The mapping file, and a hash of its text recorded with every run (the mapping's version).
    public var file: String
    public var version: String
    /// The folder the mapping file lives in; relative paths in `fetch:` start here.
    public var directory: String
}

/// What a feed is expected to deliver, so that a late, empty or shrunken feed raises an alert.
public struct DeliveryExpectation: Sendable, Hashable {
    public var dueDay: Int?
    public var minRows: Int?
    /// Largest allowed drop in rows against the previous period, as a fraction (0.5 = half).
    public var maxDrop: Double?
}

/// One record produced from each row.
public struct OutputSpec: Sendable {
    public var type: RecordType
    public var key: [String]
    /// One spec per field of `type`, in the type's field order; nil where the mapping leaves it empty.
    public var fields: [FieldSpec?]
    public var keepIf: Expression?
    public var keepIfText: String?
    /// Wide to long: one record per column whose header matches (a column per month).
    public var unpivot: Unpivot? = nil
}

/// `unpivot:` — columns selected by a pattern become one record each: the cell goes to
/// `into`, and fields are taken from the column's header through the pattern's groups.
public struct Unpivot: Sendable {
    public var columns: NSRegularExpressionBox
    /// The field each cell goes to.
    public var into: FieldSpec
    /// Fields filled from the header: `{1}`, `{2}` … are the pattern's groups.
    public var header: [(spec: FieldSpec, template: String)]
}

/// How one canonical field is read from a row.
public struct FieldSpec: Sendable {
    public enum Combine: String, Sendable, CaseIterable { case first, join, sum }
    public enum OnInvalid: String, Sendable, CaseIterable { case quarantine, empty }

    public var name: String
    public var type: FieldType
    /// Source columns (CSV header text) or dotted paths (JSON); empty when `constant` is set.
    public var from: [String]
    public var constant: String?
    public var combine: Combine = .first
    public var separator: String = ""
    public var required: Bool
    public var defaultValue: String?
    public var formats: [DateFormat] = []
    /// Multiplier for money written in larger units (`unit: 万元` → 10000).
    public var moneyScale: Int64 = 1
    public var allowNegative = false
    /// Source value → canonical value, applied before parsing (keys normalized).
    public var codeMap: [String: String]? = nil
    /// The code table as written, for filling in period values (`PeriodValues`).
    public var rawCodeMap: [String: String]? = nil
    /// Allowed canonical values (from the type's declaration).
    public var allowedValues: [String] = []
    /// A regular expression whose first group is the value.
    public var extract: NSRegularExpressionBox? = nil
    public var onInvalid: OnInvalid = .quarantine
    /// A cell holding several values ("健康帮扶、产业帮扶"), split on this text: one record per value.
    public var split: String? = nil
    /// `expr:` — computed from the output's other fields and the period, instead of a column.
    public var expression: Expression? = nil
    public var expressionText: String? = nil
    public var location: SourceLocation
}

/// Lets a compiled regular expression travel in Sendable values; it is only read.
public final class NSRegularExpressionBox: @unchecked Sendable {
    public let regex: NSRegularExpression
    public let pattern: String
    init(_ r: NSRegularExpression, _ p: String) { regex = r; pattern = p }
}
