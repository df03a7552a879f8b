import Foundation
public import Hub
import CCurl

/// Fetches a feed over HTTP(S) through libcurl, streaming the body into the decoder.
///
/// ```yaml
/// connector: http
/// fetch:
///   url: "${MINZHENG_URL}/api/v1/dibao/changes?month={period}"
///   headers: { X-Org-Code: "411081" }
///   auth: { bearer_env: MINZHENG_TOKEN }        # secrets come only from the environment
///   page: { style: page, param: pageNo, size_param: pageSize, size: 500, start: 1 }
///   timeout: 600
/// ```
/// Pagination styles: `page` (page numbers), `offset` (record offsets), `cursor` (the value
/// found at `json.cursor_at` in each page is sent back as `param`). Paging stops at a page with
/// fewer records than `size` (page/offset) or without a cursor (cursor). Any answer other than
/// 2xx, a body shorter than announced, a stalled transfer or an unreachable host fails the pull.
public struct HTTPConnector: Connector {
    public static let kind = "http"
    public static let optionsHelp: [(key: String, help: String)] = [
        ("url", "地址；可含 {period}、{period_compact}、{year}、{month}、${环境变量} 或 ${变量:-默认值}"),
        ("headers", "附加的请求头（映射）；值可含 ${环境变量}"),
        ("auth", "认证：{ bearer_env: 变量 } | { basic_user: 用户名, basic_password_env: 变量 } | { api_key_env: 变量, header: 头名 } 或 { api_key_env: 变量, param: 参数名 }"),
        ("page", "分页：{ style: page|offset|cursor, param: 参数名, size_param: 每页条数参数名, size: 每页条数, start: 起始值, max_pages: 上限 }"),
        ("timeout", "整个请求的超时（秒），默认 600"),
        ("connect_timeout", "连接超时（秒），默认 15"),
        ("stall_timeout", "连续多少秒收不到数据即视为中断，默认 60"),
        ("max_bytes", "单个响应的最大字节数，默认 8589934592（8 GB）"),
        ("ca_file", "部门私有 CA 的证书文件（PEM）；证书校验始终开启"),
    ]

    struct Auth: Sendable {
        var bearerEnv: String?
        var basicUser: String?, basicUserEnv: String?, basicPasswordEnv: String?
        var apiKeyEnv: String?, apiKeyHeader: String?, apiKeyParam: String?
    }
    struct Paging: Sendable {
        enum Style: String, Sendable { case page, offset, cursor }
        var style: Style
        var param: String
        var sizeParam: String?
        var size: Int
        var start: Int
        var maxPages: Int
    }

    var url: String
    var headers: [(String, String)]
    var auth: Auth
    var paging: Paging?
    var timeout: Int
    var connectTimeout: Int
    var stallTimeout: Int
    var maxBytes: Int
    var caFile: String?

    public static func make(options: ConfigNode, directory: String, reader r: ConfigReader) -> HTTPConnector? {
        let before = r.diagnostics.count
        let m = r.mapping(options, what: "fetch（http 连接器）", allowed: optionsHelp.map(\.key))
        let url = r.requiredString(m, "url", in: options, what: "fetch") ?? ""
        if !url.isEmpty && !(url.hasPrefix("http://") || url.hasPrefix("https://") || url.hasPrefix("${")) {
            r.error(m["url"]!.0.location, "url 应以 http:// 或 https:// 开头，实为 \"\(url)\"")
        }
        var headers: [(String, String)] = []
        if let hn = m["headers"]?.0 {
            for (k, (v, _)) in r.mapping(hn, what: "fetch.headers").sorted(by: { $0.key < $1.key }) {
                if let s = r.string(v, what: "headers.\(k)") { headers.append((k, s)) }
                if k.lowercased() == "authorization" && !(r.string(v, what: "") ?? "").contains("${") {
                    r.error(v.location, "不要把认证信息写进映射文件；请用 auth: { bearer_env: 变量名 }，密钥放在环境变量中")
                }
            }
        }
        var auth = Auth()
        if let an = m["auth"]?.0 {
            let a = r.mapping(an, what: "fetch.auth", allowed: ["bearer_env", "basic_user", "basic_user_env", "basic_password_env", "api_key_env", "header", "param"])
            auth.bearerEnv = r.string(a["bearer_env"]?.0, what: "auth.bearer_env")
            auth.basicUser = r.string(a["basic_user"]?.0, what: "auth.basic_user")
            auth.basicUserEnv = r.string(a["basic_user_env"]?.0, what: "auth.basic_user_env")
            auth.basicPasswordEnv = r.string(a["basic_password_env"]?.0, what: "auth.basic_password_env")
            auth.apiKeyEnv = r.string(a["api_key_env"]?.0, what: "auth.api_key_env")
            auth.apiKeyHeader = r.string(a["header"]?.0, what: "auth.header")
            auth.apiKeyParam = r.string(a["param"]?.0, what: "auth.param")
            let kinds = [auth.bearerEnv != nil, auth.basicPasswordEnv != nil, auth.apiKeyEnv != nil].filter { $0 }.count
            if kinds != 1 { r.error(an.location, "auth 须且只能选一种：bearer_env、basic_password_env（配 basic_user 或 basic_user_env）或 api_key_env（配 header 或 param）") }
            if auth.basicPasswordEnv != nil && auth.basicUser == nil && auth.basicUserEnv == nil { r.error(an.location, "basic 认证须给出 basic_user 或 basic_user_env") }
            if auth.apiKeyEnv != nil && (auth.apiKeyHeader == nil) == (auth.apiKeyParam == nil) { r.error(an.location, "api_key_env 须配 header（请求头名）或 param（查询参数名），二者取一") }
        }
        var paging: Paging? = nil
        if let pn = m["page"]?.0 {
            let p = r.mapping(pn, what: "fetch.page", allowed: ["style", "param", "size_param", "size", "start", "max_pages"])
            let style = r.oneOf(p["style"]?.0, what: "page.style", ["page", "offset", "cursor"]).flatMap(Paging.Style.init) ?? .page
            let param = r.string(p["param"]?.0, what: "page.param")
            if param == nil { r.error(pn.location, "page 须给出 param：页码、偏移量或游标的查询参数名") }
            let size = r.int(p["size"]?.0, what: "page.size", range: 1...1_000_000) ?? 0
            if style != .cursor && size == 0 { r.error(pn.location, "page.size（每页条数）须给出，用来判断最后一页") }
            paging = Paging(style: style, param: param ?? "page", sizeParam: r.string(p["size_param"]?.0, what: "page.size_param"),
                            size: size, start: r.int(p["start"]?.0, what: "page.start") ?? (style == .page ? 1 : 0),
                            maxPages: r.int(p["max_pages"]?.0, what: "page.max_pages", range: 1...10_000_000) ?? 100_000)
        }
        let c = HTTPConnector(
            url: url, headers: headers, auth: auth, paging: paging,
            timeout: r.int(m["timeout"]?.0, what: "timeout", range: 1...86400) ?? 600,
            connectTimeout: r.int(m["connect_timeout"]?.0, what: "connect_timeout", range: 1...600) ?? 15,
            stallTimeout: r.int(m["stall_timeout"]?.0, what: "stall_timeout", range: 1...3600) ?? 60,
            maxBytes: r.int(m["max_bytes"]?.0, what: "max_bytes", range: 1...Int.max) ?? (8 << 30),
            caFile: r.string(m["ca_file"]?.0, what: "ca_file").map { $0.hasPrefix("/") ? $0 : (directory as NSString).appendingPathComponent($0) })
        return r.diagnostics.count == before ? c : nil
    }

    public func fetch(_ context: FetchContext, into sink: any DocumentSink) throws {
        let base = try context.expand(url)
        var extraParams: [(String, String)] = []
        var headerLines = try headers.map { "\($0.0): \(try context.expand($0.1))" }
        var basic: (String, String)? = nil
        if let env = auth.bearerEnv { headerLines.append("Authorization: Bearer \(try context.secret(env))") }
        if let env = auth.basicPasswordEnv {
            let user = try auth.basicUser ?? context.secret(auth.basicUserEnv!)
            basic = (user, try context.secret(env))
        }
        if let env = auth.apiKeyEnv {
            let key = try context.secret(env)
            if let h = auth.apiKeyHeader { headerLines.append("\(h): \(key)") } else { extraParams.append((auth.apiKeyParam!, key)) }
        }
        let client = try CurlClient(connectTimeout: connectTimeout, timeout: timeout, stallTimeout: stallTimeout,
                                    maxBytes: maxBytes, caFile: caFile, headers: headerLines, basic: basic)
        guard let paging else {
            _ = try client.get(Self.withParams(base, extraParams), document: "\(context.source)", into: sink)
            return
        }
        var value = paging.start
        var cursor: String? = nil
        for n in 0..<paging.maxPages {
            var params = extraParams
            switch paging.style {
            case .page, .offset: params.append((paging.param, String(value)))
            case .cursor: if let cursor { params.append((paging.param, cursor)) }
            }
            if let sp = paging.sizeParam { params.append((sp, String(paging.size))) }
            let info = try client.get(Self.withParams(base, params), document: "第 \(n + 1) 页", into: sink)
            switch paging.style {
            case .page:
                if info.rows == 0 || info.rows < paging.size { return }
                value += 1
            case .offset:
                if info.rows == 0 || info.rows < paging.size { return }
                value += info.rows
            case .cursor:
                guard let next = info.cursor, !next.isEmpty, next != cursor, info.rows > 0 else { return }
                cursor = next
            }
        }
        throw FetchError("分页超过 max_pages=\(paging.maxPages) 仍未结束；请检查分页设置", retryable: false)
    }

    static func withParams(_ url: String, _ params: [(String, String)]) -> String {
        guard !params.isEmpty else { return url }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#")
        let q = params.map { "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }
        return url + (url.contains("?") ? "&" : "?") + q.joined(separator: "&")
    }
}

/// One libcurl easy handle, reused for every page of a pull.
final class CurlClient {
    private let handle: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>? = nil
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    let maxBytes: Int

    static let globalInit: Void = { curl_global_init(3) }()

    init(connectTimeout: Int, timeout: Int, stallTimeout: Int, maxBytes: Int, caFile: String?, headers: [String], basic: (String, String)?) throws {
        _ = Self.globalInit
        guard let h = curl_easy_init() else { throw FetchError("libcurl 初始化失败", retryable: false) }
        handle = h
        self.maxBytes = maxBytes
        ccurl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_long(h, CURLOPT_FOLLOWLOCATION, 1)
        ccurl_setopt_long(h, CURLOPT_MAXREDIRS, 5)
        ccurl_setopt_string(h, CURLOPT_PROTOCOLS_STR, "http,https")
        ccurl_setopt_string(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        ccurl_setopt_long(h, CURLOPT_CONNECTTIMEOUT, connectTimeout)
        ccurl_setopt_long(h, CURLOPT_TIMEOUT, timeout)
        ccurl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1)
        ccurl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, stallTimeout)
        ccurl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1)
        ccurl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2)
        ccurl_setopt_string(h, CURLOPT_ACCEPT_ENCODING, "")   // gzip/deflate if the server offers
        ccurl_setopt_string(h, CURLOPT_USERAGENT, "hubd/0.1 (防返贫监测数据交换)")
        if let caFile { ccurl_setopt_string(h, CURLOPT_CAINFO, caFile) }
        for line in headers { headerList = curl_slist_append(headerList, line) }
        if let headerList { ccurl_setopt_slist(h, CURLOPT_HTTPHEADER, headerList) }
        if let (user, password) = basic {
            ccurl_setopt_long(h, CURLOPT_HTTPAUTH, 1)
            ccurl_setopt_string(h, CURLOPT_USERNAME, user)
            ccurl_setopt_string(h, CURLOPT_PASSWORD, password)
        }
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        ccurl_setopt_pointer(h, CURLOPT_ERRORBUFFER, errorBuffer)
        ccurl_setopt_write_function(h) { data, size, count, user in
            let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }
    }

    deinit {
        curl_easy_cleanup(handle)
        if let headerList { curl_slist_free_all(headerList) }
        errorBuffer.deallocate()
    }

    /// State of one transfer, reached from the C write callback.
    final class Transfer {
        let sink: any DocumentSink
        let handle: UnsafeMutableRawPointer
        let document: String
        let maxBytes: Int
        var status = 0
        var bytes = 0
        var begun = false
        var errorBody: [UInt8] = []
        var failure: (any Error)? = nil

        init(sink: any DocumentSink, handle: UnsafeMutableRawPointer, document: String, maxBytes: Int) {
            self.sink = sink; self.handle = handle; self.document = document; self.maxBytes = maxBytes
        }

        func receive(_ chunk: UnsafeRawBufferPointer) -> Bool {
            if status == 0 {
                var code = 0
                ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
                status = code
            }
            bytes += chunk.count
            if bytes > maxBytes {
                failure = FetchError("响应超过 max_bytes=\(maxBytes) 字节，已中止", retryable: false)
                return false
            }
            guard (200..<300).contains(status) else {
                if errorBody.count < 2048 { errorBody += chunk.prefix(2048 - errorBody.count) }
                return true
            }
            do {
                if !begun { try sink.begin(document: document); begun = true }
                try sink.write(chunk)
                return true
            } catch {
                failure = error
                return false
            }
        }
    }

    func get(_ url: String, document: String, into sink: any DocumentSink) throws -> DocumentInfo {
        let transfer = Transfer(sink: sink, handle: handle, document: document, maxBytes: maxBytes)
        let box = Unmanaged.passRetained(transfer)
        defer { box.release() }
        ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, box.toOpaque())
        ccurl_setopt_string(handle, CURLOPT_URL, url)
        errorBuffer[0] = 0
        let rc = curl_easy_perform(handle)
        let shown = Self.redact(url)
        if let failure = transfer.failure { throw failure }
        if rc != CURLE_OK {
            let detail = String(cString: errorBuffer)
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(rc)) : detail
            let retryable = [CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_PARTIAL_FILE, CURLE_RECV_ERROR,
                             CURLE_GOT_NOTHING, CURLE_COULDNT_RESOLVE_HOST, CURLE_SEND_ERROR].contains(rc)
            let what: String
            switch rc {
            case CURLE_PARTIAL_FILE, CURLE_RECV_ERROR: what = "响应体不完整（传输中断）"
            case CURLE_OPERATION_TIMEDOUT: what = "超时"
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST: what = "无法连接"
            default: what = "传输失败"
            }
            throw FetchError("\(shown)：\(what)（libcurl \(rc.rawValue)：\(text)）", retryable: retryable)
        }
        var code = 0
        ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        guard (200..<300).contains(code) else {
            let body = String(decoding: transfer.errorBody, as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
            var after: curl_off_t = -1
            ccurl_getinfo_off(handle, CURLINFO_RETRY_AFTER, &after)
            throw FetchError("\(shown)：服务器返回 HTTP \(code)\(body.isEmpty ? "" : "：" + String(body.prefix(300)))\(after > 0 ? "（要求 \(after) 秒后重试）" : "")",
                             retryable: code >= 500 || code == 429 || code == 408, retryAfter: after > 0 ? Double(after) : nil,
                             notDelivered: code == 404)
        }
        // An empty 2xx body is still a document: zero rows.
        if !transfer.begun { try sink.begin(document: document) }
        return try sink.end()
    }

    /// The URL without query values that may hold keys, for messages and logs.
    static func redact(_ url: String) -> String {
        guard let q = url.firstIndex(of: "?") else { return url }
        let params = url[url.index(after: q)...].split(separator: "&").map { p -> String in
            let name = p.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            let lower = name.lowercased()
            return ["key", "token", "secret", "password", "apikey", "api_key", "access_token", "sign"].contains(where: { lower.contains($0) }) ? "\(name)=***" : String(p)
        }
        return String(url[..<q]) + "?" + params.joined(separator: "&")
    }
}
