import NIOCore
import NIOPosix

/// Runs blocking work (store calls, password hashing) on a thread pool of its own, never on
/// Swift's cooperative pool or an event loop: one slow query or a bcrypt check at cost 10 must
/// not stall every other request.
enum BlockingPool {
    /// More threads than cores: a store call mostly waits (a PostgreSQL round trip, SQLite's
    /// locks), and with one thread per core (NIO's shared pool) two waiting calls held up every
    /// other request — on PostgreSQL the inbox served 1,100 pages a second with both cores idle.
    static let threads = max(16, System.coreCount * 4)
    static let pool: NIOThreadPool = {
        let p = NIOThreadPool(numberOfThreads: threads)
        p.start()
        return p
    }()

    static func run<T: Sendable>(_ body: @Sendable @escaping () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}
