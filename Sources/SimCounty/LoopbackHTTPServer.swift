import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server on 127.0.0.1 that stands in for a department's system: it serves the
/// simulated feeds to the real connectors, and can misbehave on purpose (truncate a body,
/// stall, answer 503) so tests see real transport failures. One connection at a time per
/// thread, `Connection: close` after each answer.
///
/// Sendable: `stopped`, `threads` and `requestLog` are read and written with `lock` held; the
/// rest is `let`.
public final class LoopbackHTTPServer: @unchecked Sendable {
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var headers: [String: String]
        /// The request body (up to 1 MB, by Content-Length).
        public var body: [UInt8] = []
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]
        /// Send only this many body bytes, then close, while announcing the full length.
        public var truncateAt: Int? = nil
        /// Send the body in chunked transfer encoding (as streaming APIs do).
        public var chunked = false
        /// Pause this long between chunks (a slow department server), in seconds.
        public var chunkDelay: Double = 0
        public var chunkSize = 16384
        /// Faults: answer nothing for this long; stop sending after N body bytes for this long;
        /// reset the connection after N body bytes; stream a chunked body that never ends (the body,
        /// then its last line repeated).
        public var silence: Double = 0
        public var stallAfter: Int? = nil
        public var stallSeconds: Double = 0
        public var resetAfter: Int? = nil
        public var endless = false

        public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = [], truncateAt: Int? = nil, chunked: Bool = false,
                    chunkDelay: Double = 0, chunkSize: Int = 16384) {
            self.status = status; self.headers = headers; self.body = body; self.truncateAt = truncateAt; self.chunked = chunked
            self.chunkDelay = chunkDelay; self.chunkSize = chunkSize
        }
        public static func text(_ s: String, status: Int = 200, contentType: String = "text/plain; charset=utf-8") -> Response {
            Response(status: status, headers: [("Content-Type", contentType)], body: Array(s.utf8))
        }
    }

    public typealias Handler = @Sendable (Request) -> Response

    private let listenFD: Int32
    public let port: Int
    private let handler: Handler
    private let lock = NSLock()
    private var stopped = false
    private var threads: [Thread] = []
    /// Accepting threads still running: the listening socket is closed only when none is, so
    /// its descriptor number cannot be reused (by another test's server) while a thread of this
    /// one may still call accept on it — which once served another server's requests with this
    /// server's handler, a body cut short.
    private var running = 0
    private var log: [Request] = []
    /// The requests served so far, in order.
    public var requestLog: [Request] { lock.lock(); defer { lock.unlock() }; return log }

    /// Starts listening on 127.0.0.1 (port 0: any free port) with `workers` accepting threads.
    public init(port: Int = 0, workers: Int = 4, handler: @escaping Handler) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerError("socket() 失败") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else { close(fd); throw ServerError("无法监听 127.0.0.1:\(port)（端口可能被占用）") }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.listenFD = fd
        running = max(1, workers)
        for _ in 0..<max(1, workers) {
            let t = Thread { [weak self] in self?.acceptLoop() }
            t.stackSize = 1 << 20
            threads.append(t)
            t.start()
        }
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public func stop() {
        lock.lock()
        let already = stopped
        stopped = true
        let none = running == 0
        lock.unlock()
        guard !already else { return }
        // Wakes the threads blocked in accept; the last one to leave closes the socket.
        shutdown(listenFD, Int32(SHUT_RDWR))
        if none { close(listenFD) }
    }

    deinit { if !stopped { stop() } }

    private func acceptLoop() {
        defer {
            lock.lock()
            running -= 1
            let last = running == 0 && stopped
            lock.unlock()
            if last { close(listenFD) }
        }
        while true {
            let c = accept(listenFD, nil, nil)
            lock.lock(); let s = stopped; lock.unlock()
            if c < 0 {
                if s { return }
                continue
            }
            if s { close(c); return }
            serve(c)
            close(c)
        }
    }

    private func serve(_ fd: Int32) {
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 65536)
        var data: [UInt8] = []
        var rest: [UInt8] = []
        while data.count < 1 << 20 {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            data += buf[0..<n]
            if let end = Self.find(data, [13, 10, 13, 10]) { rest = Array(data[(end + 4)...]); data = Array(data[0..<end]); break }
        }
        let head = String(decoding: data, as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let parts = lines.removeFirst().split(separator: " ")
        guard parts.count >= 2 else { return }
        var headers: [String: String] = [:]
        for l in lines {
            guard let colon = l.firstIndex(of: ":") else { continue }
            headers[l[..<colon].lowercased()] = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let target = String(parts[1])
        let comps = URLComponents(string: target)
        var query: [String: String] = [:]
        for item in comps?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let length = max(0, min(Int(headers["content-length"] ?? "") ?? 0, 1 << 20))
        while rest.count < length {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            rest += buf[0..<n]
        }
        let request = Request(method: String(parts[0]), path: comps?.path ?? target, query: query, headers: headers, body: Array(rest.prefix(length)))
        lock.lock(); log.append(request); lock.unlock()
        let response = handler(request)
        send(fd, response)
    }

    private func send(_ fd: Int32, _ r: Response) {
        if r.silence > 0 { Thread.sleep(forTimeInterval: r.silence); return }
        if r.endless {
            guard writeAll(fd, Array("HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8)) else { return }
            // The body once, then its last line again and again.
            let first = Array((String(r.body.count, radix: 16) + "\r\n").utf8) + r.body + [13, 10]
            if !r.body.isEmpty { guard writeAll(fd, first) else { return } }
            let lastLine = r.body.split(separator: 10, omittingEmptySubsequences: true).last.map { Array($0) + [10] } ?? Array("a,b,c\n".utf8)
            let piece = Array(repeating: lastLine, count: max(1, 65536 / lastLine.count)).flatMap { $0 }
            let framed = Array((String(piece.count, radix: 16) + "\r\n").utf8) + piece + [13, 10]
            let started = Date()
            while Date().timeIntervalSince(started) < 30 { if !writeAll(fd, framed) { return } }
            return
        }
        var head = "HTTP/1.1 \(r.status) \(Self.reason(r.status))\r\n"
        for (k, v) in r.headers { head += "\(k): \(v)\r\n" }
        if r.chunked { head += "Transfer-Encoding: chunked\r\n" } else { head += "Content-Length: \(r.body.count)\r\n" }
        head += "Connection: close\r\n\r\n"
        guard writeAll(fd, Array(head.utf8)) else { return }
        if let n = r.stallAfter {
            _ = writeAll(fd, Array(r.body.prefix(n)))
            Thread.sleep(forTimeInterval: r.stallSeconds)
            return
        }
        if let n = r.resetAfter {
            _ = writeAll(fd, Array(r.body.prefix(n)))
            var lg = linger(l_onoff: 1, l_linger: 0)   // close with RST
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, socklen_t(MemoryLayout<linger>.size))
            return
        }
        let body = r.truncateAt.map { Array(r.body.prefix($0)) } ?? r.body
        if r.chunked {
            var i = 0
            while i < body.count {
                if r.chunkDelay > 0 && i > 0 { Thread.sleep(forTimeInterval: r.chunkDelay) }
                let piece = Array(body[i..<min(body.count, i + r.chunkSize)])
                guard writeAll(fd, Array((String(piece.count, radix: 16) + "\r\n").utf8) + piece + [13, 10]) else { return }
                i += piece.count
            }
            if r.truncateAt == nil { _ = writeAll(fd, Array("0\r\n\r\n".utf8)) }
        } else {
            _ = writeAll(fd, body)
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // A signal to the process (a daemon test's SIGHUP, say) interrupts a blocked send: go on.
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<i + needle.count]) == needle { return i }
        return nil
    }

    static func reason(_ s: Int) -> String {
        switch s {
        case 200: return "OK"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}

public struct ServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}
