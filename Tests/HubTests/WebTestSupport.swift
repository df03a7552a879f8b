import Foundation
import Testing
@testable import Hub
@testable import HubWeb
import Connectors
import Hummingbird
#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 client over a POSIX socket, so the web tests speak real HTTP to the real
/// server on 127.0.0.1 without pulling an HTTP client library into the build.
struct TestHTTP {
    struct Reply {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        var setCookies: [String] { headers.filter { $0.0.lowercased() == "set-cookie" }.map(\.1) }
    }

    let port: Int
    var cookies: [String: String] = [:]

    mutating func request(_ method: String, _ path: String, body: String? = nil, contentType: String = "application/x-www-form-urlencoded",
                          headers extra: [(String, String)] = [], latin1: Bool = false) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { throw ServerGone() }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if !cookies.isEmpty { head += "Cookie: " + cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") + "\r\n" }
        for (k, v) in extra { head += "\(k): \(v)\r\n" }
        let bodyBytes = latin1 ? (body ?? "").unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) } : Array((body ?? "").utf8)
        if body != nil { head += "Content-Type: \(contentType)\r\nContent-Length: \(bodyBytes.count)\r\n" }
        let out = Array((head + "\r\n").utf8) + bodyBytes
        _ = out.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            data += buf[0..<n]
        }
        guard let split = (0..<max(0, data.count - 3)).first(where: { data[$0] == 13 && data[$0 + 1] == 10 && data[$0 + 2] == 13 && data[$0 + 3] == 10 }) else {
            throw ServerGone()
        }
        let lines = String(decoding: data[0..<split], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [(String, String)] = []
        for l in lines.dropFirst() {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers.append((String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)))
        }
        var body = Array(data[(split + 4)...])
        if headers.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1.contains("chunked") }) { body = Self.dechunk(body) }
        let reply = Reply(status: status, headers: headers, body: body)
        for c in reply.setCookies {
            let kv = c.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
            let name = String(kv[0]), value = kv.count > 1 ? String(kv[1]) : ""
            if value.isEmpty || c.contains("Max-Age=0") { cookies[name] = nil } else { cookies[name] = value }
        }
        return reply
    }

    static func dechunk(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while i < b.count {
            guard let eol = (i..<(b.count - 1)).first(where: { b[$0] == 13 && b[$0 + 1] == 10 }) else { break }
            let size = Int(String(decoding: b[i..<eol], as: UTF8.self), radix: 16) ?? 0
            if size == 0 { break }
            out += b[(eol + 2)..<min(b.count, eol + 2 + size)]
            i = eol + 2 + size + 2
        }
        return out
    }

    struct ServerGone: Error {}

    static func form(_ pairs: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return pairs.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
    }

    /// Signs in through the login form; returns the reply to the POST.
    @discardableResult
    mutating func signIn(_ user: String, _ password: String) throws -> Reply {
        let page = try request("GET", "/login")
        let token = Self.hidden(page.text, "_csrf") ?? ""
        return try request("POST", "/login", body: Self.form([("_csrf", token), ("username", user), ("password", password)]))
    }

    static func hidden(_ html: String, _ name: String) -> String? {
        guard let r = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        return String(html[r.upperBound...].prefix { $0 != "\"" })
    }
}

/// Runs the web app on 127.0.0.1 for the length of a test.
final class RunningApp: @unchecked Sendable {
    let task: Task<Void, any Error>
    let port: Int

    init(_ web: WebApp) async throws {
        let box = PortBox()
        let app = Application(router: web.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in box.set(channel.localAddress?.port ?? 0) })
        task = Task { try await app.runService() }
        var waited = 0
        while box.get() == 0 && waited < 500 { try await Task.sleep(nanoseconds: 10_000_000); waited += 1 }
        port = box.get()
    }

    func stop() { task.cancel() }

    final class PortBox: @unchecked Sendable {
        private let lock = NSLock()
        private var p = 0
        func set(_ v: Int) { lock.lock(); p = v; lock.unlock() }
        func get() -> Int { lock.lock(); defer { lock.unlock() }; return p }
    }
}
