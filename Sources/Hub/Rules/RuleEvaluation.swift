import Foundation

/// What `RuleEngine.evaluateAndStore` did.
public struct RuleEvaluation: Sendable {
    public var totals: AlertTotals
    /// The alerts raised, when asked to keep them (scoring the simulated county); else empty.
    public var alerts: [Alert]
    /// Seconds the evaluating thread waited for the writer, and the writer for the evaluator:
    /// which of the two is the slower half.
    public var evaluatorWaited: Double
    public var writerWaited: Double
}

/// The evaluating thread's work: walk the rules and hand each chunk to the writer.
///
/// Sendable: handed to one thread at its start; the engine is read only there, chunks cross
/// through the `BoundedQueue` (locked) and the end through the semaphore.
final class EvaluationJob: @unchecked Sendable {
    let engine: RuleEngine
    let period: Period
    let only: Set<String>?
    let queue: BoundedQueue<RuleChunk>
    let done = DispatchSemaphore(value: 0)

    init(engine: RuleEngine, period: Period, only: Set<String>?, queue: BoundedQueue<RuleChunk>) {
        self.engine = engine; self.period = period; self.only = only; self.queue = queue
    }

    func run() {
        do {
            try engine.evaluate(period: period, only: only) { try queue.put($0) }
            queue.finish(nil)
        } catch {
            queue.finish(error)
        }
        done.signal()
    }
}

extension RuleEngine {
    /// Evaluates every rule for the period and stores the alerts and cases, the two at once: the
    /// rules are evaluated on a second thread, over one read snapshot, while this thread stores
    /// each chunk of a few thousand subjects as it arrives, all in one write transaction (a
    /// failure on either side stores nothing). Earlier alerts of evaluated subjects that no
    /// longer fire are withdrawn while unworked; `evaluatedRun` is marked evaluated in the same
    /// transaction. Memory stays at a few chunks whatever the number of subjects and alerts.
    public func evaluateAndStore(period: Period, only: Set<String>? = nil, into store: any CaseStore, evaluatedRun: Int64? = nil,
                                 deadlineDays: Int = 15, keepAlerts: Bool = false) throws -> RuleEvaluation {
        let queue = BoundedQueue<RuleChunk>(capacity: 2)
        let job = EvaluationJob(engine: self, period: period, only: only, queue: queue)
        let thread = Thread { [job] in job.run() }
        thread.stackSize = 8 << 20
        thread.name = "hub.rules.evaluate"
        var started = false
        var kept: [Alert] = []
        let totals: AlertTotals
        do {
            totals = try store.storeAlerts(deadlineDays: deadlineDays, evaluatedRun: evaluatedRun) { writer in
                thread.start()
                started = true
                while let chunk = try queue.take() {
                    if keepAlerts { kept += chunk.alerts }
                    try writer.save(chunk, withdraw: true)
                }
            }
        } catch {
            queue.close()
            if started { job.done.wait() }
            throw error
        }
        job.done.wait()
        return RuleEvaluation(totals: totals, alerts: kept, evaluatorWaited: Double(queue.producerWaited) / 1e9,
                              writerWaited: Double(queue.writerWaited) / 1e9)
    }
}
