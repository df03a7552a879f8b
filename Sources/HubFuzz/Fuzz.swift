import Foundation
import Hub
import Connectors

/// libFuzzer entry point. Build with `scripts/fuzz.sh` (`swift build -sanitize=fuzzer`); the
/// target is chosen by HUB_FUZZ_TARGET: csv, json, ndjson, xml, xlsx, mapping, expression, photo.
/// Every input must end in rows, a clear error, or nothing — never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch FuzzTarget.current {
    case "json": FuzzTarget.decode(FeedFormat.json(JSONOptions()), bytes)
    case "ndjson": FuzzTarget.decode(.ndjson, bytes)
    case "xml": FuzzTarget.decode(.xml(XMLOptions(recordElement: "Claim")), bytes)
    case "xlsx": FuzzTarget.decode(.xlsx(XLSXOptions()), bytes)
    case "mapping":
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? FuzzTarget.loader.load(text: text, file: "fuzz.yaml")
        _ = try? RecordType.load(text: text, file: "fuzz.yaml")
    case "photo":
        // Untrusted bytes from a phone: kept, stripped or refused, never a crash; a stripped photo
        // is a photo again.
        let input = Array(bytes)
        _ = try? PhotoSanitizer.sanitize(input, keepLocation: true)
        if let out = try? PhotoSanitizer.sanitize(input, keepLocation: false) { _ = try? PhotoSanitizer.sanitize(out.bytes, keepLocation: false) }
    case "expression":
        let text = String(decoding: bytes, as: UTF8.self)
        if let e = try? ExpressionParser.parse(text), (try? ExpressionChecker.check(e, in: FuzzTarget.scope)) != nil {
            _ = ExpressionEvaluator.evaluate(e) { FuzzTarget.values[$0] ?? .null }
        }
        _ = try? ResidentID(parsing: text)
        _ = Money.parse(text)
    default:
        var o = CSVOptions(); o.headerRow = 1
        FuzzTarget.decode(.csv(o), bytes)
    }
    return 0
}

enum FuzzTarget {
    static let current = ProcessInfo.processInfo.environment["HUB_FUZZ_TARGET"] ?? "csv"
    static let types = (try? TypeCatalog.load(directory: URL(fileURLWithPath: ProcessInfo.processInfo.environment["HUB_TYPES"] ?? "Mappings/types"))) ?? TypeCatalog()
    static let loader = MappingLoader(types: types, connectors: BuiltinConnectors.registry)
    static let scope = FieldScope(["a": .number, "t": .text, "d": .date, "b": .bool])
    static let values: [String: Value] = ["a": .money(12345), "t": .text("一级"), "d": .date(CivilDate(year: 2026, month: 10, day: 1)!), "b": .bool(true)]

    static func decode(_ format: FeedFormat, _ bytes: UnsafeRawBufferPointer) {
        var d = format.makeDecoder()
        // Feed in two pieces so chunk boundaries are exercised too.
        let cut = bytes.count / 2
        do {
            try d.feed(UnsafeRawBufferPointer(rebasing: bytes[0..<cut])) { _ in }
            try d.feed(UnsafeRawBufferPointer(rebasing: bytes[cut...])) { _ in }
            _ = try d.finish { _ in }
        } catch {}
    }
}

#if !FUZZING
/// Without libFuzzer (`-D FUZZING`), the same target replays files: `HubFuzz FILE...` runs each
/// through the chosen target, which is how a crash found by the fuzzer becomes a regression test.
@main
struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            _ = data.withUnsafeBytes { fuzz($0.bindMemory(to: UInt8.self).baseAddress ?? UnsafePointer(bitPattern: 1)!, data.count) }
        }
        print("replayed \(CommandLine.arguments.count - 1) inputs with target \(FuzzTarget.current)")
    }
}
#endif
