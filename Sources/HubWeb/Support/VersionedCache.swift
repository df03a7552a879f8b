import Foundation

/// Values computed from the store and kept until it changes (the version they were computed
/// at moves on). Bounded: cleared when it grows past `capacity` entries. When many requests
/// miss the same key at once (right after a change), one computes and the others wait for it.
///
/// Sendable: every field is read and written with `condition` locked. Waiting blocks the
/// caller's thread, which is always one of `BlockingPool`'s.
public final class VersionedCache: @unchecked Sendable {
    private let condition = NSCondition()
    private var entries: [String: (version: Int, value: Any)] = [:]
    private var computing: Set<String> = []
    let capacity: Int

    public init(capacity: Int = 1024) { self.capacity = capacity }

    public func value<T>(_ key: String, version: Int, _ compute: () throws -> T) throws -> T {
        condition.lock()
        while true {
            if let e = entries[key], e.version == version, let v = e.value as? T { condition.unlock(); return v }
            if !computing.contains(key) { break }
            condition.wait()
        }
        computing.insert(key)
        condition.unlock()
        let result: T
        do { result = try compute() } catch {
            condition.lock(); computing.remove(key); condition.broadcast(); condition.unlock()
            throw error
        }
        condition.lock()
        computing.remove(key)
        if entries.count >= capacity { entries.removeAll() }
        entries[key] = (version, result)
        condition.broadcast()
        condition.unlock()
        return result
    }

    /// Entries held now (for tests of the bound).
    var count: Int { condition.lock(); defer { condition.unlock() }; return entries.count }
}
