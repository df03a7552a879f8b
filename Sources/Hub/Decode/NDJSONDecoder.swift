/// Newline-delimited JSON: one object per line, decoded line by line. A line that is not valid
/// JSON is quarantined with its line number; the other lines go on.
public struct NDJSONDecoder: RowDecoder {
    private var line: [UInt8] = []
    private var lineNumber = 0
    private var rows = 0
    let maxLine = 16 << 20

    public init() {}

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (RawRow) throws -> Void) throws {
        var start = 0
        for i in 0..<bytes.count where bytes[i] == 0x0A {
            line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            try endLine(emit)
            start = i + 1
        }
        line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
        if line.count > maxLine { throw DecodeError("第 \(lineNumber + 1) 行超过 \(maxLine >> 20) MB，不像是 NDJSON") }
    }

    private mutating func endLine(_ emit: (RawRow) throws -> Void) throws {
        lineNumber += 1
        defer { line.removeAll(keepingCapacity: true) }
        if line.last == 0x0D { line.removeLast() }
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
        rows += 1
        do {
            let pairs = try line.withUnsafeBytes { try JSONValueParser.flatten($0) }
            try emit(jsonRow(number: lineNumber, pairs: pairs))
        } catch let e as DecodeError {
            let text = String(decoding: line.prefix(2000), as: UTF8.self)
            try emit(RawRow(number: lineNumber, columns: Columns(["line"], fixed: false), values: [text], problem: e.message))
        }
    }

    public mutating func finish(_ emit: (RawRow) throws -> Void) throws -> DocumentInfo {
        if !line.isEmpty { try endLine(emit) }
        return DocumentInfo(rows: rows)
    }
}

/// NDJSON has no options: one JSON object per line.
public struct NDJSONOptions: FormatOptions, Hashable {
    public init() {}
    public static let name = "ndjson"
    public static let optionsHelp: [(key: String, help: String)] = []
    public static func make(section: ConfigNode?, format: ConfigNode, reader r: ConfigReader) -> NDJSONOptions? {
        if let n = section { _ = r.mapping(n, what: "ndjson", allowed: []) }
        return NDJSONOptions()
    }
    public func makeDecoder() -> any RowDecoder { NDJSONDecoder() }
}
