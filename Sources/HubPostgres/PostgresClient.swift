import Foundation
import Hub
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// Where the PostgreSQL store lives: `postgres://USER@HOST:PORT/DATABASE`, with optional
/// `?schema=NAME` (a schema of its own in a shared database), `sslmode=disable|prefer|require`,
/// `sslrootcert=FILE`, `pool=N` (connections per process, default 10) and
/// `password_env=NAME` (the variable holding the password).
///
/// The password never comes from the address: a password in it is refused, so that it does not
/// end up in shell history, unit files or logs. It comes from the named variable, else
/// `PGPASSWORD`, else `~/.pgpass` (or `PGPASSFILE`) as libpq reads it.
public struct PostgresLocation: Sendable, Equatable {
    public enum TLSMode: String, Sendable { case disable, prefer, require }
    public private(set) var host: String
    public private(set) var port: Int
    public private(set) var user: String
    public private(set) var database: String
    /// Checked to be a plain identifier (it is written into `SET search_path`).
    public private(set) var schema: String?
    public private(set) var tls: TLSMode = .prefer
    public private(set) var rootCertificate: String?
    public private(set) var poolSize = 10
    public private(set) var passwordVariable: String?

    /// Whether a `--db` value names a PostgreSQL store.
    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://")
    }

    public init(url text: String) throws {
        // The address is not echoed: it may hold a password that made it unparsable.
        guard Self.isPostgres(text), let url = URLComponents(string: text) else {
            throw StoreError("PostgreSQL 地址应为 postgres://用户@主机:端口/数据库（地址无法解析；口令不要写在地址里）")
        }
        if url.password != nil {
            throw StoreError("PostgreSQL 地址里不能写密码（会留在命令历史和日志里）；请用环境变量 PGPASSWORD、password_env=变量名 或 ~/.pgpass")
        }
        guard let user = url.user, !user.isEmpty else { throw StoreError("PostgreSQL 地址缺少用户名：postgres://用户@主机/数据库") }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw StoreError("PostgreSQL 地址缺少数据库名：postgres://用户@主机/数据库") }
        self.user = user.removingPercentEncoding ?? user
        self.host = url.host ?? "127.0.0.1"
        self.port = url.port ?? 5432
        self.database = database
        for item in url.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "schema":
                guard value.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
                    throw StoreError("schema=\(value) 不可用：只能用小写字母、数字和下划线")
                }
                schema = value
            case "sslmode":
                switch value {
                case "disable": tls = .disable
                case "allow", "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default: throw StoreError("sslmode=\(value) 不认识：用 disable、prefer 或 require")
                }
            case "sslrootcert": rootCertificate = value
            case "pool":
                // A worker holds up to three at once (a pull's claim, its evaluation's claim, the
                // evaluation's writer) and reads with a fourth.
                guard let n = Int(value), (4...200).contains(n) else { throw StoreError("pool=\(value) 应为 4 到 200 的整数") }
                poolSize = n
            case "password_env": passwordVariable = value
            case "password": throw StoreError("PostgreSQL 地址里不能写密码；请用环境变量 PGPASSWORD、password_env=变量名 或 ~/.pgpass")
            default: throw StoreError("PostgreSQL 地址的参数 \(item.name) 不认识（可用 schema、sslmode、sslrootcert、pool、password_env）")
            }
        }
    }

    /// The address as logs and pages may show it (it never holds a password).
    public var description: String {
        "postgres://\(user)@\(host):\(port)/\(database)" + (schema.map { "?schema=\($0)" } ?? "")
    }

    /// The password from the environment or the password file, as libpq finds it.
    func password(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let name = passwordVariable { return environment[name] }
        if let p = environment["PGPASSWORD"] { return p }
        let file = environment["PGPASSFILE"] ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.pgpass")
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            // host:port:database:user:password, `*` matching anything, `\:` a colon.
            var fields: [String] = [], current = "", escaped = false
            for ch in line {
                if escaped { current.append(ch); escaped = false } else if ch == "\\" { escaped = true } else if ch == ":" && fields.count < 4 {
                    fields.append(current); current = ""
                } else { current.append(ch) }
            }
            fields.append(current)
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 || ($0 == "localhost" && $1 == "127.0.0.1") }) { return fields[4] }
        }
        return nil
    }
}

/// A value bound to a statement.
enum PGValue {
    case null
    case text(String)
    case int(Int64)
    case double(Double)
    case bytes([UInt8])
    case texts([String])
    case ints([Int64])

    static func text(_ s: String?) -> PGValue { s.map { .text($0) } ?? .null }
    static func int(_ i: Int) -> PGValue { .int(Int64(i)) }
}

/// One result row, by column name.
struct PGRow {
    let cells: [PostgresCell]
    let index: [String: Int]

    subscript(_ name: String) -> PostgresCell? { index[name].map { cells[$0] } }
    subscript(_ i: Int) -> PostgresCell { cells[i] }

    func string(_ name: String) -> String? { self[name].flatMap(PGRow.string) }
    func text(_ name: String) -> String { string(name) ?? "" }
    func int64(_ name: String) -> Int64? { self[name].flatMap(PGRow.int64) }
    func int(_ name: String) -> Int { Int(int64(name) ?? 0) }
    func double(_ name: String) -> Double? { self[name].flatMap(PGRow.double) }
    func bool(_ name: String) -> Bool { self[name].flatMap(PGRow.bool) ?? false }
    func bytes(_ name: String) -> [UInt8]? { self[name]?.bytes.map { Array($0.readableBytesView) } }

    static func string(_ cell: PostgresCell) -> String? {
        guard var b = cell.bytes else { return nil }
        switch cell.dataType {
        case .int2, .int4, .int8: return int64(cell).map(String.init)
        case .float4, .float8: return double(cell).map { String($0) }
        case .bool: return bool(cell).map { $0 ? "1" : "0" }
        case .numeric: return numeric(cell).map(\.string)
        default: return b.readString(length: b.readableBytes)
        }
    }

    static func numeric(_ cell: PostgresCell) -> PostgresNumeric? {
        PostgresData(type: cell.dataType, formatCode: cell.format, value: cell.bytes).numeric
    }

    static func int64(_ cell: PostgresCell) -> Int64? {
        guard var b = cell.bytes else { return nil }
        switch cell.dataType {
        case .int8: return b.readInteger(as: Int64.self)
        case .int4: return b.readInteger(as: Int32.self).map(Int64.init)
        case .int2: return b.readInteger(as: Int16.self).map(Int64.init)
        case .bool: return b.readInteger(as: UInt8.self).map { $0 != 0 ? 1 : 0 }
        case .float8: return double(cell).map { Int64($0) }
        case .numeric: return numeric(cell).flatMap { Int64($0.string) ?? Double($0.string).map { Int64($0) } }
        default: return b.readString(length: b.readableBytes).flatMap { Int64($0) }
        }
    }

    static func double(_ cell: PostgresCell) -> Double? {
        guard var b = cell.bytes else { return nil }
        switch cell.dataType {
        case .float8: return b.readInteger(as: UInt64.self).map { Double(bitPattern: $0) }
        case .float4: return b.readInteger(as: UInt32.self).map { Double(Float(bitPattern: $0)) }
        case .int2, .int4, .int8: return int64(cell).map(Double.init)
        case .numeric: return numeric(cell).flatMap { Double($0.string) }
        default: return b.readString(length: b.readableBytes).flatMap { Double($0) }
        }
    }

    static func bool(_ cell: PostgresCell) -> Bool? {
        guard var b = cell.bytes else { return nil }
        if cell.dataType == .bool { return b.readInteger(as: UInt8.self).map { $0 != 0 } }
        return int64(cell).map { $0 != 0 }
    }
}

/// Runs the async parts of postgres-nio (COPY) on a thread of their own, so a store called from
/// any thread — a pull's writing thread, the web's blocking pool, a test on Swift's cooperative
/// pool — can wait for them without needing a free thread of the cooperative pool.
final class CopyExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = CopyExecutor()
    private let queue = DispatchQueue(label: "hub.postgres.copy")
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Carries a value across a `Task` boundary for a caller that waits for it.
final class Outcome<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// One connection, used by one thread at a time: statements block the calling thread until the
/// server answers (the event loop does the I/O).
final class PGConnection {
    let connection: PostgresConnection
    let logger: Logger
    private var cursors = 0

    init(_ connection: PostgresConnection, logger: Logger) { self.connection = connection; self.logger = logger }

    static func bindings(_ values: [PGValue]) -> PostgresBindings {
        var b = PostgresBindings(capacity: values.count)
        for v in values {
            switch v {
            case .null: b.appendNull()
            case .text(let s): b.append(s)
            case .int(let i): b.append(i)
            case .double(let d): b.append(d)
            case .bytes(let bytes): b.append(ByteBuffer(bytes: bytes))
            case .texts(let list): b.append(list)
            case .ints(let list): b.append(list)
            }
        }
        return b
    }

    private func run(_ sql: String, _ binds: [PGValue]) throws -> PostgresQueryResult {
        do {
            return try connection.query(PostgresQuery(unsafeSQL: sql, binds: Self.bindings(binds)), logger: logger).wait()
        } catch let e as PSQLError {
            throw StoreError(Self.describe(e))
        }
    }

    /// The server's message (and detail), not postgres-nio's generic description; ID numbers in
    /// it (a detail may quote the row) are masked, as everywhere the hub shows or logs them.
    static func describe(_ e: PSQLError) -> String {
        if let fields = e.serverInfo {
            var text = "PostgreSQL：" + (fields[.message] ?? "\(e.code)")
            if let d = fields[.detail] { text += "（\(d)）" }
            if let c = fields[.sqlState] { text += " [\(c)]" }
            return ResidentID.maskEmbedded(text)
        }
        return "PostgreSQL：\(e.code)" + (e.underlying.map { "：\($0)" } ?? "")
    }

    func query(_ sql: String, _ binds: [PGValue] = []) throws -> [PGRow] {
        let result = try run(sql, binds)
        return Self.rows(result.rows)
    }

    static func rows(_ rows: [PostgresRow]) -> [PGRow] {
        guard let first = rows.first else { return [] }
        var index: [String: Int] = [:]
        for (i, cell) in first.enumerated() where index[cell.columnName] == nil { index[cell.columnName] = i }
        return rows.map { PGRow(cells: Array($0), index: index) }
    }

    func one(_ sql: String, _ binds: [PGValue] = []) throws -> PGRow? { try query(sql, binds).first }

    /// Runs a statement; the rows it changed.
    @discardableResult
    func execute(_ sql: String, _ binds: [PGValue] = []) throws -> Int {
        try run(sql, binds).metadata.rows ?? 0
    }

    /// Walks a query's result through a server-side cursor, `chunk` rows at a time, inside the
    /// current transaction; `body` returns false to stop.
    func forEach(_ sql: String, _ binds: [PGValue] = [], chunk: Int = 2000, _ body: (PGRow) throws -> Bool) throws {
        cursors += 1
        let name = "hub_cursor_\(cursors)"
        try execute("DECLARE \(name) NO SCROLL CURSOR FOR " + sql, binds)
        defer { _ = try? execute("CLOSE \(name)") }
        while true {
            let rows = try query("FETCH \(chunk) FROM \(name)")
            for r in rows { guard try body(r) else { return } }
            if rows.count < chunk { return }
        }
    }

    /// `COPY table (columns) FROM STDIN` in text format; `fill` writes the rows (tab-separated,
    /// `\N` for null, escaped with `PGConnection.copyEscape`).
    func copy(into table: String, columns: [String], _ data: ByteBuffer) throws {
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome<Void>()
        let connection = self.connection, logger = self.logger
        Task(executorPreference: CopyExecutor.shared) {
            do {
                try await connection.copyFrom(table: table, columns: columns, logger: logger) { writer in
                    try await writer.write(data)
                }
                outcome.result = .success(())
            } catch {
                outcome.result = .failure(error)
            }
            done.signal()
        }
        done.wait()
        if case .failure(let e) = outcome.result! {
            if let p = e as? PSQLError { throw StoreError(Self.describe(p)) }
            throw e
        }
    }

    /// Appends a value to a COPY text row: backslash, tab, newline and carriage return escaped;
    /// NUL characters, which PostgreSQL text cannot hold, left out.
    static func copyEscape(_ s: String, into b: inout ByteBuffer) {
        var s = s
        s.withUTF8 { u in
            var start = 0
            for (i, c) in u.enumerated() where c == 0x5C || c == 0x09 || c == 0x0A || c == 0x0D || c == 0 {
                b.writeBytes(UnsafeBufferPointer(rebasing: u[start..<i]))
                switch c {
                case 0: break
                case 0x09: b.writeStaticString("\\t")
                case 0x0A: b.writeStaticString("\\n")
                case 0x0D: b.writeStaticString("\\r")
                default: b.writeStaticString("\\\\")
                }
                start = i + 1
            }
            b.writeBytes(UnsafeBufferPointer(rebasing: u[start...]))
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    func transaction<T>(_ mode: String = "", _ body: () throws -> T) throws -> T {
        try execute("BEGIN" + (mode.isEmpty ? "" : " " + mode))
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }
}

/// A small pool of connections shared by the threads of one process. A connection goes back
/// to the pool after each use; a broken one is dropped and a new one opened on demand.
final class PGPool: @unchecked Sendable {
    let location: PostgresLocation
    let logger: Logger
    private let configuration: PostgresConnection.Configuration
    private let group: any EventLoopGroup
    private let lock = NSCondition()
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var nextID = 0
    private var closed = false

    init(_ location: PostgresLocation) throws {
        self.location = location
        var logger = Logger(label: "hub.postgres")
        logger.logLevel = .critical
        self.logger = logger
        let tls: PostgresConnection.Configuration.TLS
        switch location.tls {
        case .disable: tls = .disable
        case .prefer, .require:
            var config = TLSConfiguration.makeClientConfiguration()
            if let ca = location.rootCertificate {
                config.trustRoots = .file(ca)
            } else if location.tls == .prefer {
                // prefer: encryption when the server offers it, without checking who it is (as libpq).
                config.certificateVerification = .none
            }
            let context = try NIOSSLContext(configuration: config)
            tls = location.tls == .require ? .require(context) : .prefer(context)
        }
        var configuration = PostgresConnection.Configuration(host: location.host, port: location.port, username: location.user,
                                                             password: location.password(), database: location.database, tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        self.configuration = configuration
        self.group = MultiThreadedEventLoopGroup.singleton
    }

    private func connect() throws -> PostgresConnection {
        lock.lock(); nextID += 1; let id = nextID; lock.unlock()
        let c: PostgresConnection
        do {
            c = try PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger).wait()
        } catch let e as PSQLError {
            throw StoreError("连接 PostgreSQL \(location.description) 失败：" + PGConnection.describe(e))
        } catch {
            throw StoreError("连接 PostgreSQL \(location.description) 失败：\(error)")
        }
        let wrapped = PGConnection(c, logger: logger)
        // Text compares byte by byte whatever the database's locale, as on SQLite and in Swift.
        if let schema = location.schema { try wrapped.execute("SET search_path TO \(schema)") }
        try wrapped.execute("SET TIME ZONE 'UTC'")
        // No JIT compilation: the hub's statements are short, and a batch upsert planned with
        // sequential scans disabled looks expensive enough to trigger it (140 ms per batch, measured).
        try wrapped.execute("SET jit = off")
        return c
    }

    /// Takes a connection out of the pool (waiting while all `poolSize` are in use); give it back with `giveBack`.
    func lease() throws -> PostgresConnection {
        lock.lock()
        while idle.isEmpty && open >= location.poolSize && !closed { lock.wait() }
        if closed { lock.unlock(); throw StoreError("PostgreSQL 存储已关闭") }
        if let c = idle.popLast() { lock.unlock(); return c }
        open += 1
        lock.unlock()
        do { return try connect() } catch {
            lock.lock(); open -= 1; lock.signal(); lock.unlock()
            throw error
        }
    }

    func giveBack(_ connection: PostgresConnection) {
        lock.lock()
        if connection.isClosed || closed { open -= 1; let _: EventLoopFuture<Void> = connection.close() } else { idle.append(connection) }
        lock.signal()
        lock.unlock()
    }

    /// Lends a connection to `body`.
    func withConnection<T>(_ body: (PGConnection) throws -> T) throws -> T {
        let connection = try lease()
        defer { giveBack(connection) }
        return try body(PGConnection(connection, logger: logger))
    }

    func read<T>(_ body: (PGConnection) throws -> T) throws -> T {
        try withConnection { c in try c.transaction("ISOLATION LEVEL REPEATABLE READ READ ONLY") { try body(c) } }
    }

    func write<T>(_ body: (PGConnection) throws -> T) throws -> T {
        try withConnection { c in try c.transaction { try body(c) } }
    }

    func close() {
        lock.lock()
        closed = true
        let all = idle
        idle.removeAll()
        lock.broadcast()
        lock.unlock()
        for c in all { let f: EventLoopFuture<Void> = c.close(); try? f.wait() }
    }
}
