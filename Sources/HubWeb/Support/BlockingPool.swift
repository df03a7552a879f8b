import NIOCore
import NIOPosix
import Synchronization

/// Runs blocking work (store calls, password hashing) on a thread pool for blocking work, never
/// on Swift's cooperative pool or an event loop: one slow query or a bcrypt check at cost 10
/// must not stall every other request.
///
/// An embedded store's calls are CPU work: one thread per core (NIO's shared pool) serves the
/// most pages (on SQLite 16 threads gave 2,600 cached inbox pages a second where one per core
/// gave 6,200). A store behind a network mostly waits on round trips: with one thread per core,
/// two waiting calls held up every request (PostgreSQL: 1,100 pages a second with the cores
/// idle), so such a store's web app runs them on a pool of `networkThreads`.
enum BlockingPool {
    static let networkThreads = max(16, System.coreCount * 4)
    private static let onNetwork = Atomic<Bool>(false)
    private static let networkPool: NIOThreadPool = {
        let p = NIOThreadPool(numberOfThreads: networkThreads)
        p.start()
        return p
    }()

    /// From now on, calls run on the larger pool (a web app over a store behind a network).
    static func waitOnNetwork() { onNetwork.store(true, ordering: .relaxed) }

    static func run<T: Sendable>(_ body: @Sendable @escaping () throws -> T) async throws -> T {
        try await (onNetwork.load(ordering: .relaxed) ? networkPool : NIOThreadPool.singleton).runIfActive(body)
    }
}
