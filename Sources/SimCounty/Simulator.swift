import Foundation
import Hub
import Synchronization

/// The simulated departments of one county: serves each feed over HTTP on 127.0.0.1 the way
/// the department does (a paged JSON API with a token, an XML export, NDJSON events, CSV, an
/// Excel roster) and drops the 医保 file where an SFTP upload would land.
///
/// Every month up to `publishedThrough` is served: the county's own period from memory, other
/// months built on first request (the daemon asks for the months its schedules imply).
///
/// Sendable: the county, feeds and truth are `let`; `server` and `publishedThrough` are set
/// before any other thread sees the simulator and only read after; other months sit behind a mutex.
public final class Simulator: @unchecked Sendable {
    /// The counties served: one, or the counties of a city (`CountyConfig.city`).
    public let counties: [County]
    public let feeds: [FeedFile]
    /// What a clean pull must store and the rules must find, over every county served.
    public let truth: GroundTruth
    public private(set) var server: LoopbackHTTPServer? = nil
    /// The bearer token the simulated 民政 API expects.
    public static let minzhengToken = "sim-minzheng-token"

    /// The first (or only) county.
    public var county: County { counties[0] }

    public convenience init(config: CountyConfig) throws { try self.init(counties: [config]) }

    /// Several counties of one city, delivered as the city's departments export them: each feed
    /// holds every county's rows (the shapes of 禹州's feeds, which the shipped mappings read).
    public init(counties configs: [CountyConfig]) throws {
        precondition(!configs.isEmpty)
        counties = configs.map(County.init)
        let parts = counties.map { CountyFeeds(county: $0) }
        if parts.count == 1 {
            feeds = try parts[0].render()
            truth = parts[0].truth
        } else {
            guard configs.allSatisfy({ $0.style == .yuzhou }) else { throw SimulatorError("多个县的模拟只有禹州的数据格式（--county yuzhou）") }
            feeds = try CountyFeeds.render(parts)
            truth = GroundTruth(merging: parts.map(\.truth))
        }
    }

    /// Starts serving on 127.0.0.1 (port 0: any free port).
    public func start(port: Int = 0) throws {
        server = try LoopbackHTTPServer(port: port) { [self] req in respond(req) }
    }

    /// The latest month served: the county's period unless set later (`hubd simulate` serves up
    /// to the current month, which weekly feeds ask for). Set before `start`.
    public var publishedThrough: Period? = nil
    /// How far back the departments keep their months.
    public static let monthsKept = 36
    private let otherMonths = Mutex<[Period: Simulator]>([:])

    /// The same county as delivered for another month (same seed, scale and shapes), built on
    /// first use and kept; nil for a month the departments do not publish (later than
    /// `publishedThrough`, or more than `monthsKept` before the county's period).
    public func month(_ p: Period) throws -> Simulator? {
        if p == county.period { return self }
        guard p <= (publishedThrough ?? county.period), p >= county.period.adding(months: -Self.monthsKept) else { return nil }
        if let s = otherMonths.withLock({ $0[p] }) { return s }
        // Built outside the lock (a real county takes seconds), kept for the next request; the
        // cache holds a few months only.
        let built = try Simulator(counties: counties.map { var c = $0.config; c.period = p; return c })
        return otherMonths.withLock { cache in
            if let s = cache[p] { return s }
            if cache.count >= 6 { cache.removeAll() }
            cache[p] = built
            return built
        }
    }

    func respond(_ req: LoopbackHTTPServer.Request) -> LoopbackHTTPServer.Response {
        guard let base = feeds.first(where: { $0.path == req.path }) else { return .text("not found", status: 404) }
        if let (name, value) = base.requiredHeader, req.headers[name] != value {
            return .text("{\"success\":false,\"msg\":\"密钥无效\"}", status: 401, contentType: "application/json")
        }
        var feed = base
        if let asked = req.query["month"] ?? req.query["yf"] ?? req.query["ny"] {
            let p = Period(asked) ?? (asked.count == 6 ? Period(String(asked.prefix(4)) + "-" + String(asked.suffix(2))) : nil)
            guard let p, let sim = try? month(p), let f = sim.feeds.first(where: { $0.path == req.path }) else {
                if base.pages != nil { return .text(CountyFeeds.minzhengPage([], pageNo: 1, total: 0), contentType: base.contentType) }
                return .text("该月数据未发布", status: 404)
            }
            feed = f
        }
        if let rows = feed.pages {
            guard req.headers["authorization"] == "Bearer \(Self.minzhengToken)" else {
                return .text("{\"code\":401,\"msg\":\"令牌无效\"}", status: 401, contentType: "application/json")
            }
            let n = max(1, Int(req.query["pageNo"] ?? "1") ?? 1)
            let size = min(1000, max(1, Int(req.query["pageSize"] ?? "100") ?? 100))
            let slice = rows.dropFirst((n - 1) * size).prefix(size)
            return .text(CountyFeeds.minzhengPage(slice, pageNo: n, total: rows.count), contentType: feed.contentType)
        }
        return LoopbackHTTPServer.Response(status: 200, headers: [("Content-Type", feed.contentType)], body: feed.bytes)
    }

    public func stop() { server?.stop() }

    public var baseURL: String { server?.baseURL ?? "" }

    /// Writes the file-drop feeds of these months into the drop folder under `dir`, as the
    /// department would have uploaded them by now.
    public func writeDrops(to dir: URL, months: [Period]) throws {
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("drop/yibao"), withIntermediateDirectories: true)
        for p in months {
            guard let sim = try month(p) else { continue }
            for f in sim.feeds where f.path == nil { try Data(f.bytes).write(to: dir.appendingPathComponent("drop/yibao/\(f.fileName)")) }
        }
    }

    /// Writes every feed as a file, the 医保 drop folder, and `ground-truth.json`, under `dir`.
    public func write(to dir: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("drop/yibao"), withIntermediateDirectories: true)
        for f in feeds {
            let target = f.path == nil ? dir.appendingPathComponent("drop/yibao/\(f.fileName)") : dir.appendingPathComponent(f.fileName)
            try Data(f.bytes).write(to: target)
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try enc.encode(truth).write(to: dir.appendingPathComponent("ground-truth.json"))
    }

    /// The environment the shipped mappings (or, for the second county, the example mappings in
    /// `Mappings/examples/yanling/`) read: each department's address and the secrets.
    public func environment(dropDirectory: URL) -> [String: String] {
        if county.config.style == .yanling {
            return [
                "YL_FANPIN_URL": baseURL + "/xczx",
                "YL_MINZHENG_URL": baseURL + "/mz",
                "YL_CANLIAN_URL": baseURL + "/cl",
                "YL_CANLIAN_KEY": CountyFeeds.yanlingCanlianKey,
                "YL_YIBAO_URL": baseURL + "/yb",
                "YL_SHUILI_URL": baseURL + "/sl",
                "YL_DIANLI_URL": baseURL + "/dl",
            ]
        }
        return [
            "ROSTER_URL": baseURL + "/fanpin/export/roster.xlsx",
            "MINZHENG_URL": baseURL + "/minzheng",
            "MINZHENG_TOKEN": Self.minzhengToken,
            "CANLIAN_URL": baseURL + "/canlian",
            "SHUILI_URL": baseURL + "/shuili",
            "DIANLI_URL": baseURL + "/dianli",
            "GUANGFU_URL": baseURL + "/guangfu",
            "YIBAO_DROP_DIR": dropDirectory.appendingPathComponent("drop/yibao").path,
        ]
    }
}
