import CCurl
import Crypto
import Foundation
import Hub

/// Sends digests through libcurl: a JSON POST for webhooks and the 企业微信 / 钉钉 group robots
/// (whose answer `errcode` must be 0), SMTP for e-mail. URLs with their keys and passwords come
/// from the environment; what is logged never shows them.
public struct CurlNotificationTransport: NotificationTransport {
    public init() {}

    public func send(_ d: CaseDigest, environment: [String: String]) throws {
        let r = d.receiver
        switch r.kind {
        case .webhook, .wecom, .dingtalk:
            guard let env = r.urlEnv, var url = environment[env], !url.isEmpty else {
                throw FetchError("通知接收方 \(r.name) 的地址环境变量 \(r.urlEnv ?? "url_env") 未设置", retryable: false)
            }
            if r.kind == .dingtalk, let secretEnv = r.secretEnv, let secret = environment[secretEnv] {
                url += (url.contains("?") ? "&" : "?") + Self.dingtalkSignature(secret: secret, now: Date())
            }
            let (status, body) = try Self.post(url, json: Self.payload(d))
            guard (200..<300).contains(status) else { throw FetchError("通知接收方 \(r.name) 回答 HTTP \(status)", retryable: true) }
            if r.kind != .webhook {
                // The robots answer 200 with their verdict in the body.
                let answer = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
                let code = (answer?["errcode"] as? NSNumber)?.intValue ?? -1
                guard code == 0 else { throw FetchError("通知接收方 \(r.name) 拒收：\(answer?["errmsg"] ?? String(decoding: body.prefix(200), as: UTF8.self))", retryable: true) }
            }
        case .email:
            try Self.mail(d, environment: environment)
        }
    }

    /// The message body each kind of receiver expects.
    public static func payload(_ d: CaseDigest) -> String {
        let text = d.lines.joined(separator: "\n")
        let object: [String: Any]
        switch d.receiver.kind {
        case .webhook:
            object = ["kind": "hub.digest", "title": d.title, "since": d.since, "link": d.link,
                      "townships": d.townships.map { ["code": $0.code, "name": $0.name, "new": $0.new, "open": $0.open, "overdue": $0.overdue] }]
        case .wecom:
            object = ["msgtype": "markdown", "markdown": ["content": "**\(d.title)**\n" + d.lines.map { "> " + $0 }.joined(separator: "\n") + "\n[打开预警收件箱](\(d.link))"]]
        case .dingtalk:
            object = ["msgtype": "markdown", "markdown": ["title": d.title, "text": "### \(d.title)\n" + d.lines.map { "- " + $0 }.joined(separator: "\n") + "\n\n[打开预警收件箱](\(d.link))"]]
        case .email:
            object = ["text": text]
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// 钉钉 加签: `timestamp=…&sign=…`, the HMAC-SHA256 of "timestamp\nsecret", Base64, URL-encoded.
    public static func dingtalkSignature(secret: String, now: Date) -> String {
        let timestamp = String(Int64(now.timeIntervalSince1970 * 1000))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(timestamp)\n\(secret)".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        let sign = Data(mac).base64EncodedString().addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return "timestamp=\(timestamp)&sign=\(sign)"
    }

    final class Collected { var bytes: [UInt8] = [] }

    static func handle() throws -> UnsafeMutableRawPointer {
        guard let h = curl_easy_init() else { throw FetchError("libcurl 初始化失败", retryable: false) }
        ccurl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_long(h, CURLOPT_CONNECTTIMEOUT, 10)
        ccurl_setopt_long(h, CURLOPT_TIMEOUT, 30)
        ccurl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1)
        ccurl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2)
        return h
    }

    static func perform(_ h: UnsafeMutableRawPointer, what: String) throws {
        let rc = curl_easy_perform(h)
        guard rc == CURLE_OK else { throw FetchError("\(what)失败：\(String(cString: curl_easy_strerror(rc)))", retryable: true) }
    }

    /// POSTs JSON; returns the status and the answer.
    static func post(_ url: String, json: String) throws -> (Int, [UInt8]) {
        let h = try handle()
        defer { curl_easy_cleanup(h) }
        let headers: UnsafeMutablePointer<curl_slist>? = curl_slist_append(nil, "Content-Type: application/json; charset=utf-8")
        defer { curl_slist_free_all(headers) }
        ccurl_setopt_string(h, CURLOPT_PROTOCOLS_STR, "http,https")
        ccurl_setopt_string(h, CURLOPT_URL, url)
        ccurl_setopt_slist(h, CURLOPT_HTTPHEADER, headers)
        ccurl_setopt_long(h, CURLOPT_POSTFIELDSIZE, json.utf8.count)
        ccurl_setopt_string(h, CURLOPT_COPYPOSTFIELDS, json)
        let collected = Collected()
        let box = Unmanaged.passRetained(collected)
        defer { box.release() }
        ccurl_setopt_pointer(h, CURLOPT_WRITEDATA, box.toOpaque())
        ccurl_setopt_write_function(h) { data, size, count, user in
            let c = Unmanaged<Collected>.fromOpaque(user!).takeUnretainedValue()
            if c.bytes.count < 65_536 { c.bytes += UnsafeRawBufferPointer(start: data, count: size * count) }
            return size * count
        }
        try perform(h, what: "发送通知")
        var code = 0
        ccurl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &code)
        return (code, collected.bytes)
    }

    /// Sends the digest as a plain-text UTF-8 e-mail over SMTP (STARTTLS when the server offers it
    /// on smtp://, TLS from the start on smtps://).
    static func mail(_ d: CaseDigest, environment: [String: String]) throws {
        let r = d.receiver
        guard let url = r.smtpURL, let from = r.from, !r.to.isEmpty else {
            throw FetchError("通知接收方 \(r.name) 须写 smtp_url、from、to", retryable: false)
        }
        let h = try handle()
        defer { curl_easy_cleanup(h) }
        ccurl_setopt_string(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps")
        ccurl_setopt_string(h, CURLOPT_URL, url)
        // With a login, TLS is required (STARTTLS on smtp://): a password never goes in the clear.
        let login = r.userEnv.flatMap({ environment[$0] }) != nil
        ccurl_setopt_long(h, CURLOPT_USE_SSL, Int((login ? CURLUSESSL_ALL : CURLUSESSL_TRY).rawValue))
        ccurl_setopt_string(h, CURLOPT_MAIL_FROM, "<\(from)>")
        var rcpt: UnsafeMutablePointer<curl_slist>? = nil
        for t in r.to { rcpt = curl_slist_append(rcpt, "<\(t)>") }
        defer { curl_slist_free_all(rcpt) }
        ccurl_setopt_slist(h, CURLOPT_MAIL_RCPT, rcpt)
        if let u = r.userEnv.flatMap({ environment[$0] }), let p = r.passwordEnv.flatMap({ environment[$0] }) {
            ccurl_setopt_string(h, CURLOPT_USERNAME, u)
            ccurl_setopt_string(h, CURLOPT_PASSWORD, p)
        }
        func encoded(_ s: String) -> String { "=?UTF-8?B?" + Data(s.utf8).base64EncodedString() + "?=" }
        let body = (d.lines + ["", "打开预警收件箱：\(d.link)"]).joined(separator: "\r\n")
        let message = [
            "From: \(from)", "To: \(r.to.joined(separator: ", "))", "Subject: \(encoded(d.title))",
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: base64", "",
            Data(body.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]), "",
        ].joined(separator: "\r\n")
        // The message is read from memory: libcurl's MIME API would need a callback for no gain.
        let reader = MessageReader(Array(message.utf8))
        let box = Unmanaged.passRetained(reader)
        defer { box.release() }
        ccurl_setopt_long(h, CURLOPT_UPLOAD, 1)
        ccurl_setopt_pointer(h, CURLOPT_READDATA, box.toOpaque())
        ccurl_setopt_read_function(h) { buffer, size, count, user in
            let r = Unmanaged<MessageReader>.fromOpaque(user!).takeUnretainedValue()
            return r.read(into: buffer!, max: size * count)
        }
        try perform(h, what: "发送邮件")
    }

    final class MessageReader {
        let bytes: [UInt8]
        var offset = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        func read(into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
            let n = min(max, bytes.count - offset)
            bytes.withUnsafeBufferPointer { src in
                UnsafeMutableRawPointer(buffer).copyMemory(from: src.baseAddress! + offset, byteCount: n)
            }
            offset += n
            return n
        }
    }
}
