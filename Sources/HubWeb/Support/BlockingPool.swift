import NIOPosix

/// Runs blocking work (store calls, password hashing) on NIO's thread pool for blocking work,
/// never on Swift's cooperative pool or an event loop: one slow query or a bcrypt check at
/// cost 10 must not stall every other request.
enum BlockingPool {
    static func run<T: Sendable>(_ body: @Sendable @escaping () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
