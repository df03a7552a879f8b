import Foundation
import Testing
@testable import Hub
import Connectors
import SimCounty

/// The repository root, found from this file's path, so tests read the shipped Mappings/.
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let shippedTypes: TypeCatalog = try! TypeCatalog.load(directory: repoRoot.appendingPathComponent("Mappings/types"))

/// A fresh folder under the system temp dir, removed by the caller when it likes.
func scratchDirectory(_ name: String = "hubtest") -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func loader(_ types: TypeCatalog = shippedTypes) -> MappingLoader {
    MappingLoader(types: types, connectors: BuiltinConnectors.registry)
}

/// Computes a valid 18-digit resident ID for an address code, birth date and sequence number.
func makeID(_ addr: String = "411081", _ birth: String, _ seq: Int) -> String {
    let s17 = addr + birth + String(format: "%03d", seq)
    return s17 + String(ResidentID.checkCharacter(for: s17.map { UInt8(String($0))! }))
}

/// Decodes a whole byte string with a decoder, in chunks of `chunk` bytes.
func decodeAll(_ decoder: inout some RowDecoder, _ bytes: [UInt8], chunk: Int = 1 << 20) throws -> (rows: [RawRow], info: DocumentInfo) {
    var rows: [RawRow] = []
    var i = 0
    while i < bytes.count {
        let piece = Array(bytes[i..<min(bytes.count, i + chunk)])
        try piece.withUnsafeBytes { try decoder.feed($0) { rows.append($0) } }
        i += chunk
    }
    let info = try decoder.finish { rows.append($0) }
    return (rows, info)
}

extension RawRow {
    subscript(_ column: String) -> String? {
        guard let p = columns.position(of: column) else { return nil }
        return value(at: p)
    }
}

/// A loopback port nothing listens on (one a server just released).
func unusedLoopbackPort() throws -> Int {
    let probe = try LoopbackHTTPServer { _ in .text("") }
    defer { probe.stop() }
    return probe.port
}

/// Runs a program to its end, its output discarded, and returns its exit status and its peak
/// resident memory in KB as the kernel accounted it for that child alone (`wait4`).
func runMeasuringPeak(_ executable: String, _ arguments: [String]) throws -> (status: Int32, peakKB: Int) {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard rc == 0 else { throw CocoaError(.executableNotLoadable) }
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    let exited = status & 0x7F == 0
    return (exited ? (status >> 8) & 0xFF : -1, Int(usage.ru_maxrss))
}

/// A value shared with another thread (a test server's handler), behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: Value
    init(_ value: Value) { v = value }
    var value: Value {
        get { lock.lock(); defer { lock.unlock() }; return v }
        set { lock.lock(); v = newValue; lock.unlock() }
    }
    /// Changes the value in one step (a read and a write with no other thread in between).
    func update<R>(_ change: (inout Value) -> R) -> R { lock.lock(); defer { lock.unlock() }; return change(&v) }
}
