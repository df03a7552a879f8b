import Foundation
import Testing
import Synchronization
@testable import Hub
@testable import HubSQLite
@testable import Connectors
import SimCounty

/// Digests of new and overdue cases, through real transports to local receivers: HTTP robots
/// on 127.0.0.1 (LoopbackHTTPServer) and an SMTP server on a socket.
@Suite(.serialized) struct NotificationTests {
    /// A store with cases in two townships and one waiting for dispatch.
    static func store() throws -> SQLiteStore {
        let store = try SQLiteStore(path: scratchDirectory("notify").appendingPathComponent("h.sqlite").path)
        func alert(_ subject: String, _ township: String?) -> Alert {
            Alert(rule: "r", title: "测试预警", severity: .medium, subjectKind: .household, subjectID: subject, householdID: township == nil ? nil : subject,
                  villageCode: township.map { $0 + "201" }, townshipCode: township, period: "2026-10", message: "张三 411081196001010013 自付 5 万",
                  evidence: [], ruleVersion: "v")
        }
        try store.saveAlerts([alert("H1", "411081101"), alert("H2", "411081101"), alert("H3", "411081102"), alert("P1", nil)])
        return store
    }

    static func settings(_ receivers: [NotificationReceiver]) throws -> NotificationSettings {
        NotificationSettings(schedule: try Schedule("daily at 08:00"), baseURL: "https://hub.example.gov.cn/", receivers: receivers)
    }

    @Test func robotsAndWebhooksGetCountsAndALinkAndNoPersonalData() throws {
        let store = try Self.store()
        let bodies = Mutex<[String: (query: [String: String], body: String)]>([:])
        let server = try LoopbackHTTPServer { req in
            bodies.withLock { $0[req.path] = (req.query, String(decoding: req.body, as: UTF8.self)) }
            if req.path == "/wecom-full" { return .text("{\"errcode\":45009,\"errmsg\":\"api freq out of limit\"}", contentType: "application/json") }
            return .text(req.path == "/hook" ? "ok" : "{\"errcode\":0,\"errmsg\":\"ok\"}", contentType: "application/json")
        }
        defer { server.stop() }
        var hook = NotificationReceiver(name: "县平台", kind: .webhook); hook.urlEnv = "HOOK_URL"
        var wecom = NotificationReceiver(name: "一乡企业微信群", kind: .wecom); wecom.urlEnv = "WECOM_URL"; wecom.townships = ["411081101"]
        var ding = NotificationReceiver(name: "二乡钉钉群", kind: .dingtalk); ding.urlEnv = "DING_URL"; ding.secretEnv = "DING_SECRET"; ding.townships = ["411081102"]
        var full = NotificationReceiver(name: "限流的群", kind: .wecom); full.urlEnv = "FULL_URL"; full.townships = ["411081101"]
        let env = ["HOOK_URL": server.baseURL + "/hook", "WECOM_URL": server.baseURL + "/wecom?key=secret-key", "DING_URL": server.baseURL + "/ding?access_token=t",
                   "DING_SECRET": "SEC0123456789", "FULL_URL": server.baseURL + "/wecom-full"]
        let waits = Mutex<[Double]>([])
        let notifier = Notifier(settings: try Self.settings([hook, wecom, ding, full]), store: store, transport: CurlNotificationTransport(),
                                backoff: Backoff(base: 1, cap: 2, maxAttempts: 3, maxTotal: 10), sleep: { d in waits.withLock { $0.append(d) } })
        let due = try notifier.dueSlot(now: Date())
        let slot = try #require(due)
        try notifier.send(slot: slot, environment: env)
        let got = bodies.withLock { $0 }
        // The county's webhook: every township with something new, and the dispatch queue.
        let hookCall = try #require(got["/hook"])
        let hookJSON = try #require(try JSONSerialization.jsonObject(with: Data(hookCall.body.utf8)) as? [String: Any])
        let towns = try #require(hookJSON["townships"] as? [[String: Any]])
        #expect(towns.compactMap { $0["code"] as? String }.sorted() == ["", "411081101", "411081102"])
        #expect(towns.first { ($0["code"] as? String) == "411081101" }?["new"] as? Int == 2)
        #expect(hookJSON["link"] as? String == "https://hub.example.gov.cn/dashboard")
        // A township's robot: its own township only, in the robot's message format.
        let wecomCall = try #require(got["/wecom"])
        let wecomJSON = try #require(try JSONSerialization.jsonObject(with: Data(wecomCall.body.utf8)) as? [String: Any])
        #expect(wecomJSON["msgtype"] as? String == "markdown")
        let content = ((wecomJSON["markdown"] as? [String: Any])?["content"] as? String) ?? ""
        #expect(content.contains("新增 2 件") && content.contains("https://hub.example.gov.cn/inbox") && !content.contains("411081102"))
        // 钉钉 加签: a timestamp and a signature on the URL.
        let dingCall = try #require(got["/ding"])
        #expect(dingCall.query["timestamp"] != nil && dingCall.query["sign"] != nil && dingCall.query["access_token"] == "t")
        // No names, ID numbers or messages anywhere.
        for (_, call) in got { #expect(!call.body.contains("张三") && !call.body.contains("411081196001010013") && !call.body.contains("H1")) }
        // A robot that refuses is retried with backoff, then given up and logged; the slot is done.
        #expect(waits.withLock { $0.count } == 2)
        let log = try store.auditLog(limit: 20).map(\.action)
        #expect(log.contains(Notifier.failedAction) && log.contains(Notifier.sentAction))
        #expect(try notifier.dueSlot(now: Date()) == nil, "the slot is not sent twice")
    }

    @Test func emailGoesOverSMTP() throws {
        let store = try Self.store()
        let smtp = try TinySMTPServer()
        defer { smtp.stop() }
        var mail = NotificationReceiver(name: "县乡村振兴局", kind: .email)
        mail.smtpURL = "smtp://127.0.0.1:\(smtp.port)"; mail.from = "hub@county.example"; mail.to = ["duty@county.example", "chief@county.example"]
        let notifier = Notifier(settings: try Self.settings([mail]), store: store, transport: CurlNotificationTransport(), sleep: { _ in })
        let due = try notifier.dueSlot(now: Date())
        try notifier.send(slot: try #require(due), environment: [:])
        let m = try #require(smtp.messages.first)
        #expect(m.from == "<hub@county.example>" && m.to == ["<duty@county.example>", "<chief@county.example>"])
        #expect(m.data.contains("Subject: =?UTF-8?B?"))
        let b64 = m.data.components(separatedBy: "\r\n\r\n").dropFirst().joined().replacingOccurrences(of: "\r\n", with: "")
        let body = String(decoding: Data(base64Encoded: b64) ?? Data(), as: UTF8.self)
        #expect(body.contains("新增 2 件") && body.contains("https://hub.example.gov.cn/dashboard") && !body.contains("张三"), "\(body)")
    }

    final class Recording: NotificationTransport {
        let sent = Mutex<[CaseDigest]>([])
        func send(_ d: CaseDigest, environment: [String: String]) throws { sent.withLock { $0.append(d) } }
    }

    @Test func theDaemonSendsEachSlotOnceEvenAcrossRestarts() throws {
        let store = try Self.store()
        let dir = scratchDirectory("notify-daemon")
        var hook = NotificationReceiver(name: "县平台", kind: .webhook); hook.urlEnv = "HOOK_URL"
        let recording = Recording()
        func daemon() throws -> Daemon {
            let d = Daemon(store: store, mappingsDirectory: dir, connectors: BuiltinConnectors.registry)
            d.notifier = Notifier(settings: try Self.settings([hook]), store: store, transport: recording)
            return d
        }
        func settle(_ d: Daemon) { let end = Date().addingTimeInterval(10); while d.isNotifying && Date() < end { Thread.sleep(forTimeInterval: 0.01) } }
        let first = try daemon()
        try first.tick(now: Date(), environment: [:]); settle(first)
        try first.tick(now: Date(), environment: [:]); settle(first)
        #expect(recording.sent.withLock { $0.count } == 1)
        let restarted = try daemon()
        try restarted.tick(now: Date(), environment: [:]); settle(restarted)
        #expect(recording.sent.withLock { $0.count } == 1, "a restart does not send the same slot again")
        // Tomorrow's slot goes out.
        try restarted.tick(now: Date().addingTimeInterval(86400), environment: [:]); settle(restarted)
        #expect(recording.sent.withLock { $0.count } == 2)
    }
}

/// Just enough SMTP to receive a message: greets, accepts every command, keeps what was sent.
final class TinySMTPServer: @unchecked Sendable {
    struct Message { var from = ""; var to: [String] = []; var data = "" }
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var received: [Message] = []
    var messages: [Message] { lock.lock(); defer { lock.unlock() }; return received }

    init() throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(s, Int32(4))
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        fd = s
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(s, nil, nil)
                if c < 0 { return }
                self.session(c)
                close(c)
            }
        }
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

    private func session(_ c: Int32) {
        func say(_ s: String) { _ = Array((s + "\r\n").utf8).withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        var pending = ""
        func line() -> String? {
            var buf = [UInt8](repeating: 0, count: 4096)
            while !pending.contains("\r\n") {
                let n = read(c, &buf, buf.count)
                if n <= 0 { return nil }
                pending += String(decoding: buf[0..<n], as: UTF8.self)
            }
            let r = pending.range(of: "\r\n")!
            let l = String(pending[..<r.lowerBound])
            pending = String(pending[r.upperBound...])
            return l
        }
        var m = Message()
        say("220 tiny ESMTP")
        while let l = line() {
            let upper = l.uppercased()
            if upper.hasPrefix("EHLO") || upper.hasPrefix("HELO") { say("250 tiny") }
            else if upper.hasPrefix("MAIL FROM:") { m.from = String(l.dropFirst(10)).trimmingCharacters(in: .whitespaces); say("250 OK") }
            else if upper.hasPrefix("RCPT TO:") { m.to.append(String(l.dropFirst(8)).trimmingCharacters(in: .whitespaces)); say("250 OK") }
            else if upper == "DATA" {
                say("354 go on")
                var data: [String] = []
                while let d = line(), d != "." { data.append(d) }
                m.data = data.joined(separator: "\r\n")
                lock.lock(); received.append(m); lock.unlock()
                m = Message()
                say("250 queued")
            } else if upper == "QUIT" { say("221 bye"); return }
            else { say("250 OK") }
        }
    }
}
