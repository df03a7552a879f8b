/// Streams an XML feed through libxml2 and emits one row per record element.
///
/// `xml: { record: Certificate }` makes every element whose local name is `Certificate` a record
/// (namespace prefixes are ignored, so `<dpf:Certificate>` matches). Within a record, each
/// leaf element becomes a column named by its local name (`IdNo`), nested ones by their path
/// (`Address.Village`), attributes by `@name` (`@id`, `Address@code`).
public struct XMLStreamDecoder: RowDecoder {
    final class State {
        let recordElement: String
        let parser: SAXParser
        var inRecord = false
        var path: [String] = []
        var text: [[UInt8]] = []
        var hadChild: [Bool] = []
        var pairs: [(String, String?)] = []
        var ready: [RawRow] = []
        var count = 0
        var sawRecord = false
        var rootSeen: [String] = []

        init(recordElement: String, name: String) {
            self.recordElement = recordElement
            parser = SAXParser(name: name)
            parser.onStart = { [unowned self] name, attrs in self.start(name, attrs) }
            parser.onEnd = { [unowned self] name in self.end(name) }
            parser.onText = { [unowned self] bytes in
                if self.inRecord, !self.text.isEmpty { self.text[self.text.count - 1].append(contentsOf: bytes) }
            }
        }

        func start(_ name: String, _ attrs: [SAXParser.Attribute]) {
            if !inRecord {
                if rootSeen.count < 16, !rootSeen.contains(name) { rootSeen.append(name) }
                guard name == recordElement else { return }
                inRecord = true; sawRecord = true
                pairs = attrs.map { ("@" + $0.name, $0.value) }
                path = []; text = [[]]; hadChild = [false]
                return
            }
            hadChild[hadChild.count - 1] = true
            path.append(name)
            let prefix = path.joined(separator: ".")
            for a in attrs { pairs.append((prefix + "@" + a.name, a.value)) }
            text.append([]); hadChild.append(false)
        }

        func end(_ name: String) {
            guard inRecord else { return }
            if path.isEmpty {
                inRecord = false
                count += 1
                ready.append(jsonRow(number: count, pairs: pairs))
                return
            }
            let t = text.removeLast()
            let leaf = !hadChild.removeLast()
            if leaf { pairs.append((path.joined(separator: "."), t.isEmpty ? nil : String(decoding: t, as: UTF8.self))) }
            path.removeLast()
        }
    }

    private let state: State

    public init(options: XMLOptions, name: String = "feed.xml") {
        state = State(recordElement: options.recordElement, name: name)
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (RawRow) throws -> Void) throws {
        try state.parser.feed(bytes)
        try drain(emit)
    }

    private func drain(_ emit: (RawRow) throws -> Void) throws {
        if state.ready.isEmpty { return }
        let rows = state.ready
        state.ready.removeAll(keepingCapacity: true)
        for r in rows { try emit(r) }
    }

    public mutating func finish(_ emit: (RawRow) throws -> Void) throws -> DocumentInfo {
        try state.parser.finish()
        try drain(emit)
        if !state.sawRecord {
            throw DecodeError("XML 中没有 <\(state.recordElement)> 元素（xml.record）；文档中的元素有：\(state.rootSeen.joined(separator: ", "))")
        }
        return DocumentInfo(rows: state.count)
    }
}

public struct XMLOptions: Sendable, Hashable {
    /// Local name of the element that holds one record.
    public var recordElement: String
    public init(recordElement: String) { self.recordElement = recordElement }
}

extension XMLOptions: FormatOptions {
    public static let name = "xml"
    public static let optionsHelp: [(key: String, help: String)] = [
        ("record", "每条记录是哪个元素（本地名，命名空间前缀不用写），如 Certificate；必填"),
    ]

    public static func make(section: ConfigNode?, format: ConfigNode, reader r: ConfigReader) -> XMLOptions? {
        guard let n = section else {
            r.error(format.location, "format: xml 须配 xml: { record: 记录元素名 }")
            return nil
        }
        let m = r.mapping(n, what: "xml", allowed: optionsHelp.map(\.key))
        guard let rec = r.requiredString(m, "record", in: n, what: "xml") else { return nil }
        return XMLOptions(recordElement: rec.split(separator: ":").last.map(String.init) ?? rec)
    }

    public func makeDecoder() -> any RowDecoder { XMLStreamDecoder(options: self) }
}
