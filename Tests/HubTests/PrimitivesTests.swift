import Foundation
import Testing
@testable import Hub
@testable import HubWeb

/// The small concurrent pieces the pipeline and the inbox's latency rest on.
@Suite struct PrimitivesTests {
    /// Starts `n` threads that call `body` together (released at once) and waits for them all.
    func together(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let ready = DispatchSemaphore(value: 0), go = DispatchSemaphore(value: 0), done = DispatchGroup()
        for i in 0..<n {
            done.enter()
            Thread.detachNewThread {
                ready.signal()
                go.wait()
                body(i)
                done.leave()
            }
        }
        for _ in 0..<n { ready.wait() }
        for _ in 0..<n { go.signal() }
        done.wait()
    }

    @Test func simultaneousMissesOfOneKeyComputeOnce() throws {
        let cache = VersionedCache()
        let computed = Locked(0), results = Locked<[Int]>([])
        together(16) { _ in
            let v = try? cache.value("inbox", version: 1) { () -> Int in
                computed.update { $0 += 1 }
                usleep(200_000)   // a slow page: the others arrive while it is computed
                return 42
            }
            results.update { $0.append(v ?? -1) }
        }
        #expect(computed.value == 1, "16 simultaneous misses computed \(computed.value) times")
        #expect(results.value == Array(repeating: 42, count: 16))
        // A new version is computed again, once; the old one is not served.
        together(8) { _ in _ = try? cache.value("inbox", version: 2) { () -> Int in computed.update { $0 += 1 }; usleep(100_000); return 43 } }
        #expect(computed.value == 2)
        #expect(try cache.value("inbox", version: 2) { -1 } == 43)
    }

    @Test func aFailedComputationIsNotKeptAndWaitersTryAgain() throws {
        struct Boom: Error {}
        let cache = VersionedCache()
        let attempts = Locked(0)
        together(4) { _ in
            _ = try? cache.value("k", version: 1) { () -> Int in
                if attempts.update({ $0 += 1; return $0 }) == 1 { usleep(100_000); throw Boom() }
                return 7
            }
        }
        #expect(attempts.value == 2, "the first failed; one waiter computed again: \(attempts.value)")
        #expect(try cache.value("k", version: 1) { -1 } == 7)
    }

    @Test func theCacheIsBounded() throws {
        let cache = VersionedCache(capacity: 8)
        for i in 0..<100 { _ = try cache.value("k\(i)", version: 1) { i } }
        #expect(cache.count <= 8)
        #expect(try cache.value("k99", version: 1) { -1 } == 99, "the newest entry is still there")
    }

    @Test func theQueueDeliversInOrderThenEndsOrFails() throws {
        struct Boom: Error {}
        let q = BoundedQueue<Int>(capacity: 2)
        Thread.detachNewThread {
            for i in 0..<100 { try? q.put(i) }
            q.finish(nil)
        }
        var got: [Int] = []
        while let i = try q.take() { got.append(i) }
        #expect(got == Array(0..<100))
        #expect(try q.take() == nil, "stays finished")

        let failing = BoundedQueue<Int>(capacity: 2)
        Thread.detachNewThread {
            try? failing.put(1)
            failing.finish(Boom())
        }
        #expect(try failing.take() == 1, "what came before the failure is delivered")
        #expect(throws: Boom.self) { _ = try failing.take() }
    }

    @Test func closingTheQueueStopsABlockedProducer() throws {
        let q = BoundedQueue<Int>(capacity: 1)
        let stopped = DispatchSemaphore(value: 0)
        let puts = Locked(0)
        Thread.detachNewThread {
            do { while true { try q.put(1); puts.update { $0 += 1 } } } catch { stopped.signal() }
        }
        // The first item fills the queue; the producer then blocks on the second.
        while puts.value < 1 { usleep(1_000) }
        usleep(50_000)   // time to reach its wait (a correct close wakes it whenever it gets there)
        q.close()
        #expect(stopped.wait(timeout: .now() + 5) == .success, "a producer blocked on a full queue is woken and stops")
        #expect(puts.value == 1)
    }

    @Test func aDocumentsFingerprintDoesNotDependOnHowItArrives() {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<10_000).map { _ in UInt8.random(in: 0...255, using: &g) }
        func fingerprint(_ cuts: [Int]) -> (Int, String) {
            var f = StreamFingerprint()
            var start = 0
            for c in cuts + [bytes.count] {
                bytes[start..<c].withUnsafeBytes { f.update($0) }
                start = c
            }
            return f.finish()
        }
        let whole = fingerprint([])
        for _ in 0..<200 {
            let cuts = (0..<Int.random(in: 1...40, using: &g)).map { _ in Int.random(in: 0...bytes.count, using: &g) }.sorted()
            let got = fingerprint(cuts)
            #expect(got == whole, "cut at \(cuts)")
        }
        // …and does depend on the bytes: one changed byte, or one more, changes it.
        var changed = bytes
        changed[5_000] ^= 1
        var f = StreamFingerprint(); changed.withUnsafeBytes { f.update($0) }
        #expect(f.finish().1 != whole.1)
        var longer = StreamFingerprint(); (bytes + [0]).withUnsafeBytes { longer.update($0) }
        #expect(longer.finish().1 != whole.1)
    }
}
