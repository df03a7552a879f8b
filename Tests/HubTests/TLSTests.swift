import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
import Connectors
#if canImport(Glibc)
import Glibc
#endif

/// Certificate verification is on for remote feeds; a department's private CA is trusted only
/// through `ca_file`. A real TLS server (openssl s_server) on 127.0.0.1 with a made-up CA.
@Suite(.serialized) struct TLSTests {
    func sh(_ script: String, in dir: URL) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        p.currentDirectoryURL = dir
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        // Wait for the exit itself (waitUntilExit can hang in Foundation on Linux), with a deadline.
        let exited = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in exited.signal() }
        try p.run()
        guard exited.wait(timeout: .now() + 30) == .success, p.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// Waits until something accepts connections on the port, up to the deadline.
    func waitForListener(_ port: Int, seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        repeat {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(fd)
            if ok == 0 { return true }
            usleep(20_000)
        } while Date() < end
        return false
    }

    @Test(.timeLimit(.minutes(1))) func privateCAIsTrustedOnlyThroughCAFile() throws {
        let dir = scratchDirectory("tls")
        try sh("""
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Test County CA" &&
            openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1" &&
            printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext &&
            openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile san.ext
            """, in: dir)
        let csv = "结算ID,身份证号,结算时间,医疗费总额\nS1,\(makeID("411081", "19600101", 1)),2026-10-01 10:00:00,60000\n"
        try csv.write(to: dir.appendingPathComponent("feed.csv"), atomically: true, encoding: .utf8)
        let probe = try LoopbackPort.free()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        server.arguments = ["60", "openssl", "s_server", "-accept", "127.0.0.1:\(probe)", "-cert", "srv.pem", "-key", "srv.key", "-WWW", "-quiet"]
        server.currentDirectoryURL = dir
        server.standardInput = FileHandle.nullDevice
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { pkillChild(server.processIdentifier); kill(server.processIdentifier, SIGKILL) }
        try #require(waitForListener(probe, seconds: 20), "openssl s_server did not start listening")

        func mapping(_ extra: String) -> String {
            """
            source: tls
            connector: http
            fetch: { url: "https://127.0.0.1:\(probe)/feed.csv", timeout: 5\(extra) }
            format: csv
            record: medical_claim
            fields: { settlement_id: 结算ID, id_number: 身份证号, settled_at: 结算时间, total_cost: 医疗费总额 }
            """
        }
        let store = try SQLiteStore(path: dir.appendingPathComponent("h.sqlite").path)
        let untrusted = try loader().load(text: mapping(""), file: "tls.yaml", directory: dir.path)
        #expect {
            _ = try Pull(mapping: untrusted, connector: try loader().connector(for: untrusted), store: store).run(period: Period("2026-10")!)
        } throws: { e in
            let m = (e as? PullError)?.message ?? ""
            return m.contains("libcurl 60") || m.lowercased().contains("certificate")
        }
        let trusted = try loader().load(text: mapping(", ca_file: ca.pem"), file: "tls.yaml", directory: dir.path)
        let r = try Pull(mapping: trusted, connector: try loader().connector(for: trusted), store: store).run(period: Period("2026-10")!)
        #expect(r.counts.inserted == 1)
    }
}

/// `timeout` runs openssl as its child: stop that too.
func pkillChild(_ parent: Int32) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
    p.arguments = ["-KILL", "-P", String(parent)]
    try? p.run()
}

enum LoopbackPort {
    static func free() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
