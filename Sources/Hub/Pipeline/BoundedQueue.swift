import Foundation

/// A bounded blocking queue between a producing thread (decoding a feed, evaluating rules) and
/// the thread that writes what it produced inside the store's transaction.
///
/// Sendable: every field is read and written with `condition` locked.
final class BoundedQueue<Item>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Item] = []
    private var finished = false
    private var failure: (any Error)?
    private var closed = false
    let capacity: Int
    /// Nanoseconds each side spent blocked: which half of the pipeline is the slower one.
    private(set) var producerWaited: UInt64 = 0
    private(set) var writerWaited: UInt64 = 0

    init(capacity: Int) { self.capacity = capacity }

    /// Blocks while the queue is full; throws when the writer has stopped.
    func put(_ item: Item) throws {
        condition.lock(); defer { condition.unlock() }
        if items.count >= capacity && !closed {
            let t0 = DispatchTime.now().uptimeNanoseconds
            while items.count >= capacity && !closed { condition.wait() }
            producerWaited += DispatchTime.now().uptimeNanoseconds - t0
        }
        if closed { throw WriterStopped() }
        items.append(item)
        condition.broadcast()
    }

    /// The producer is done: with nil after its last item, or with the error that stopped it.
    func finish(_ error: (any Error)?) {
        condition.lock(); defer { condition.unlock() }
        finished = true
        failure = error
        condition.broadcast()
    }

    /// The next item; nil when the producer finished cleanly; rethrows the producer's error.
    func take() throws -> Item? {
        condition.lock(); defer { condition.unlock() }
        if items.isEmpty && !finished {
            let t0 = DispatchTime.now().uptimeNanoseconds
            while items.isEmpty && !finished { condition.wait() }
            writerWaited += DispatchTime.now().uptimeNanoseconds - t0
        }
        if !items.isEmpty {
            let b = items.removeFirst()
            condition.broadcast()
            return b
        }
        if let failure { throw failure }
        return nil
    }

    /// The writer stopped (an error): wake the producer so it stops too.
    func close() {
        condition.lock(); defer { condition.unlock() }
        closed = true
        items.removeAll()
        condition.broadcast()
    }

    struct WriterStopped: Error {}
}
