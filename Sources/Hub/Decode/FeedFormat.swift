/// A feed format plugin: the options a mapping's section for the format may hold (`csv:`,
/// `xlsx:` …), read and checked by the format itself, and the streaming decoder they configure.
///
/// To add a format: write one file in `Sources/Hub/Decode/` with a decoder (`RowDecoder`) and
/// an options type conforming to this protocol, add one line to `BuiltinFormats.all`, and add
/// a test file. `make` reports each mistake through the reader with its line and column; it
/// runs when a mapping loads, so `hubd mapping check` catches a typo before any data flows.
public protocol FormatOptions: Sendable {
    /// The `format:` value, also the name of the mapping's section of options.
    static var name: String { get }
    /// The keys the section may hold, for documentation and error messages.
    static var optionsHelp: [(key: String, help: String)] { get }
    /// Reads the section (nil when the mapping has none); `format` is the `format:` node, for
    /// errors about a missing section. Returns nil when the options are wrong.
    static func make(section: ConfigNode?, format: ConfigNode, reader: ConfigReader) -> Self?
    /// A fresh decoder for one document.
    func makeDecoder() -> any RowDecoder
}

/// The format of a feed, with its options, as a mapping declares it.
public struct FeedFormat: Sendable {
    public let options: any FormatOptions
    public init(_ options: any FormatOptions) { self.options = options }
    public var name: String { type(of: options).name }
    /// A fresh decoder for one document of this format.
    public func makeDecoder() -> any RowDecoder { options.makeDecoder() }

    public static func csv(_ o: CSVOptions) -> FeedFormat { FeedFormat(o) }
    public static func json(_ o: JSONOptions) -> FeedFormat { FeedFormat(o) }
    public static var ndjson: FeedFormat { FeedFormat(NDJSONOptions()) }
    public static func xml(_ o: XMLOptions) -> FeedFormat { FeedFormat(o) }
    public static func xlsx(_ o: XLSXOptions) -> FeedFormat { FeedFormat(o) }
}

/// The formats an installation reads, by name.
public struct FormatRegistry: Sendable {
    public let kinds: [any FormatOptions.Type]
    public init(_ kinds: [any FormatOptions.Type]) { self.kinds = kinds }
    public var names: [String] { kinds.map { $0.name } }
    public func kind(_ name: String) -> (any FormatOptions.Type)? { kinds.first { $0.name == name } }
}

/// The one list of the formats the hub ships.
public enum BuiltinFormats {
    public static let all: [any FormatOptions.Type] = [CSVOptions.self, JSONOptions.self, NDJSONOptions.self, XMLOptions.self, XLSXOptions.self]
    public static let registry = FormatRegistry(all)
}
