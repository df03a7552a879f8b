import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import Logging

/// The result of one pull.
public struct PullResult: Sendable {
    public var runID: Int64
    public var source: String
    public var period: Period
    public var counts: RunCounts
    public var seconds: Double
    /// Rows quarantined because an earlier row of the run had the same key and other content
    /// (one ID number in two households): how many, per record type title, and the first key.
    public var conflicts: [KeyConflicts] = []
}

extension PullResult {
    /// The data-quality alert for rows that contradict an earlier row of the same delivery (a
    /// person listed in two households: the 户表机一致 check), or nil when there are none. The
    /// rows are in quarantine; the department must say which is right.
    public func conflictMessage(_ m: Mapping) -> String? {
        guard !conflicts.isEmpty else { return nil }
        let who = m.department.isEmpty ? m.title : m.department
        let parts = conflicts.map { "\($0.typeTitle) \($0.rows) 行（如 \($0.example)）" }.joined(separator: "，")
        return "\(who)：\(period) 的数据中有键相同、内容不同的行：\(parts)，例如同一人列在两户；已隔离，以先出现的一行为准，请部门核实"
    }
}

/// Conflicting duplicates of one record type within a run.
public struct KeyConflicts: Sendable, Equatable {
    public var type: String
    public var typeTitle: String
    public var rows: Int
    /// The first conflicting key as the type's key fields read, ID numbers masked.
    public var example: String
}

/// A pull that failed; the store holds the failed run and nothing else from it.
public struct PullError: Error, Sendable, CustomStringConvertible {
    public var runID: Int64
    public var source: String
    public var message: String
    public var retryable: Bool
    public var retryAfter: Double? = nil
    /// Not delivered yet (see `FetchError.notDelivered`).
    public var notDelivered = false
    public var description: String { "\(source)：拉取失败（运行 #\(runID)）：\(message)" }
}

/// One run: fetch → decode → map → store, streaming, in a single transaction.
///
/// Rows stream from the connector through the decoder and mapper straight into the store's
/// transaction, so memory does not grow with the feed. A bad row is quarantined with its
/// reasons and the run goes on; a failed fetch or a malformed document rolls the transaction
/// back, leaving only the failed run in the history.
public struct Pull {
    public var mapping: Mapping
    public var connector: any Connector
    public var store: any RecordStore
    public var logger: Logger
    /// Called every `progressEvery` rows and at the end.
    public var progress: ((RunCounts) -> Void)?
    public var progressEvery = 10_000
    /// Checked at every row: returning true stops the pull, which then rolls back whole.
    public var isCancelled: @Sendable () -> Bool = { false }
    /// When the run is recorded as started: the caller's clock (the daemon's, which tests control).
    public var clock: @Sendable () -> Date = { Date() }
    /// Where the documents read are kept (none: not kept).
    public var archive: DocumentArchive?

    public init(mapping: Mapping, connector: any Connector, store: any RecordStore, logger: Logger = Logger(label: "hub.pull")) {
        self.mapping = mapping; self.connector = connector; self.store = store; self.logger = logger
    }

    public func run(period: Period, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PullResult {
        let started = Date()
        try store.prepare(mapping.outputs.map(\.type))
        let runID = try store.startRun(source: mapping.source, period: period, mappingVersion: mapping.version, startedAt: clock())
        var log = logger
        log[metadataKey: "run"] = "\(runID)"
        log[metadataKey: "source"] = "\(mapping.source)"
        log.info("拉取开始", metadata: ["period": "\(period)"])
        let pipeline = Self.pipelineKey(mapping)
        let previous = try store.previousDocuments(source: mapping.source, period: period, pipeline: pipeline)
        let sink = PullSink(mapping: mapping, period: period, pipeline: pipeline, previous: previous)
        sink.archive = archive
        sink.isCancelled = isCancelled
        let context = FetchContext(source: mapping.source, period: period, environment: environment)
        do {
            let counts = try store.withRun(runID) { writer in
                try Self.pipeline(sink: sink, writer: writer, progress: progress, every: progressEvery) {
                    try connector.fetch(context, into: sink)
                    if sink.open { _ = try sink.end() }
                }
            }
            progress?(counts)
            let seconds = Date().timeIntervalSince(started)
            log.info("拉取完成", metadata: ["read": "\(counts.read)", "inserted": "\(counts.inserted)", "updated": "\(counts.updated)",
                                           "unchanged": "\(counts.unchanged)", "quarantined": "\(counts.quarantined)", "seconds": "\(seconds)"])
            return PullResult(runID: runID, source: mapping.source, period: period, counts: counts, seconds: seconds, conflicts: sink.conflicts)
        } catch {
            let message = Self.describe(error, document: sink.document)
            log.error("拉取失败", metadata: ["error": "\(message)"])
            let notDelivered = (error as? FetchError)?.notDelivered ?? false
            try? store.failRun(runID, error: message, counts: sink.counts, status: notDelivered ? .notDelivered : .failed)
            throw PullError(runID: runID, source: mapping.source, message: message, retryable: (error as? FetchError)?.retryable ?? false,
                            retryAfter: (error as? FetchError)?.retryAfter, notDelivered: (error as? FetchError)?.notDelivered ?? false)
        }
    }

    /// Runs `produce` (fetch, decode, map) on its own thread while the calling thread, which
    /// holds the store's transaction, writes what it produced: the two halves of a pull use
    /// the two cores of a modest server. Batches pass through a small bounded queue, so memory
    /// stays flat whatever the feed's size; an error on either side stops both, and the
    /// producer has finished before this returns.
    static func pipeline(sink: PullSink, writer: any RunWriter, progress: ((RunCounts) -> Void)?, every: Int,
                         produce: @escaping () throws -> Void) throws -> RunCounts {
        let queue = BatchQueue(capacity: 8)
        sink.queue = queue
        let done = DispatchSemaphore(value: 0)
        // The sink and the fetch belong to the producer thread until `done` is signalled; the
        // writer only touches them again after waiting for it.
        let job = HandOff(ProducerJob(sink: sink, queue: queue, produce: produce, done: done))
        let producer = Thread { job.value.run() }
        producer.stackSize = 8 << 20
        producer.name = "hub.pull.decode"
        producer.start()
        var counts = RunCounts()
        var conflicts: [KeyConflicts] = []
        var nextProgress = every
        // Records go to the store a batch at a time (one round trip for a server store); rows
        // kept aside, documents and carried-over documents do not depend on them and go as they come.
        var pending: [MappedRecord] = []
        func writePending() throws {
            guard !pending.isEmpty else { return }
            let outcomes = try writer.upsert(batch: pending)
            for (r, outcome) in zip(pending, outcomes) {
                switch outcome {
                case .inserted: counts.inserted += 1
                case .updated: counts.updated += 1
                case .unchanged: counts.unchanged += 1
                case .conflict(let document, let row):
                    // Kept aside with the values as mapped (the source row is not at hand here).
                    counts.quarantined += 1
                    if let i = conflicts.firstIndex(where: { $0.type == r.type.name }) {
                        conflicts[i].rows += 1
                    } else {
                        conflicts.append(KeyConflicts(type: r.type.name, typeTitle: r.type.title, rows: 1,
                                                      example: ResidentID.maskEmbedded(r.key.replacingOccurrences(of: "\u{1F}", with: " / "))))
                    }
                    let place = document == r.document ? "第 \(row) 行" : "\(document) 第 \(row) 行"
                    try writer.quarantine(QuarantineEntry(
                        source: sink.mapping.source, period: sink.mapper.period.description, document: r.document, row: r.row,
                        raw: zip(r.type.fields, r.values).filter { !$0.1.isNull }.map { [$0.0.title, $0.1.description] },
                        reasons: [QuarantineReason(message: "与\(place)键相同（\(r.type.title)：\(r.key.replacingOccurrences(of: "\u{1F}", with: " / "))）、内容不同；以先出现的一行为准，请部门核实")],
                        rowHash: Hashing.hex(r.rowHash)))
                }
            }
            pending.removeAll(keepingCapacity: true)
        }
        do {
            while let batch = try queue.take() {
                for item in batch.items {
                    switch item {
                    case .record(let r):
                        pending.append(r)
                    case .quarantine(let e):
                        try writer.quarantine(e)
                    case .document(let d):
                        try writer.document(d)
                    case .carryOver(let d, let run):
                        try writer.carryOver(d, from: run)
                        counts.unchanged += d.stored
                    }
                }
                if pending.count >= writer.preferredBatchSize { try writePending() }
                if let progress, batch.read >= nextProgress {
                    try writePending()
                    var c = batch.counts
                    c.inserted = counts.inserted; c.updated = counts.updated; c.unchanged = counts.unchanged
                    progress(c)
                    nextProgress = batch.read + every
                }
            }
            try writePending()
        } catch {
            queue.close()
            done.wait()
            throw error
        }
        done.wait()
        sink.conflicts = conflicts
        if ProcessInfo.processInfo.environment["HUB_PIPELINE_STATS"] != nil {
            FileHandle.standardError.write(Data("pipeline: decoder waited \(Double(queue.producerWaited) / 1e9) s for the writer, writer waited \(Double(queue.writerWaited) / 1e9) s for the decoder\n".utf8))
        }
        var total = sink.counts
        total.inserted = counts.inserted; total.updated = counts.updated; total.unchanged = counts.unchanged
        total.quarantined += counts.quarantined
        return total
    }

    /// What decides how a document's bytes become records: the mapping file and the
    /// declarations of the record types it writes.
    static func pipelineKey(_ mapping: Mapping) -> String {
        var text = mapping.version
        for out in mapping.outputs {
            text += "\u{1E}" + out.type.name
            for f in out.type.fields { text += "\u{1F}\(f.name):\(f.type.rawValue):\(f.required):\(f.values.joined(separator: ","))" }
        }
        return Hashing.hex(text)
    }

    static func describe(_ error: any Error, document: String) -> String {
        let at = document.isEmpty ? "" : "（\(document)）"
        switch error {
        case let e as FetchError: return e.message
        case let e as DecodeError: return e.message + at
        case let e as ArchiveError: return e.description
        case let e as RowMapper.MissingColumns: return e.description + at
        case let e as DiagnosticList: return e.description
        case is PullCancelled: return "服务停止，本次拉取已整体回滚，下次启动时重新拉取"
        default: return String(describing: error)
        }
    }
}

/// Thrown inside a pull when the service is shutting down.
struct PullCancelled: Error {}

/// Moves values to another thread whose use of them is ordered by a semaphore.
struct HandOff<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// The producer thread's work: fetch, decode and map, then say how it ended.
final class ProducerJob {
    let sink: PullSink
    let queue: BatchQueue
    let produce: () throws -> Void
    let done: DispatchSemaphore
    init(sink: PullSink, queue: BatchQueue, produce: @escaping () throws -> Void, done: DispatchSemaphore) {
        self.sink = sink; self.queue = queue; self.produce = produce; self.done = done
    }
    func run() {
        do {
            try produce()
            sink.flush()
            queue.finish(nil)
        } catch {
            queue.finish(error)
        }
        sink.removeSpool()
        done.signal()
    }
}

/// What the producer hands the writer: records to upsert and rows to quarantine, in source order.
enum PullItem {
    case record(MappedRecord)
    case quarantine(QuarantineEntry)
    /// A document read and mapped: remember its fingerprint.
    case document(DocumentFingerprint)
    /// A document identical to one of an earlier run: carry its results over.
    case carryOver(DocumentFingerprint, from: Int64)
}

struct PullBatch {
    var items: [PullItem] = []
    /// Rows read so far and the producer's counts when the batch was sent (for progress).
    var read = 0
    var counts = RunCounts()
}

typealias BatchQueue = BoundedQueue<PullBatch>

/// Receives a connector's documents and drives the decoder and mapper, on the producer's
/// thread; what they yield goes to the writer in batches.
///
/// When the source's last successful run was of the same month, each document whose name that
/// run read is first spooled to a temporary file while its fingerprint is taken; identical
/// bytes (same size, same 128-bit fingerprint, same mapping and types) are not decoded again —
/// the earlier results are carried over — and different bytes are decoded from the spool.
final class PullSink: DocumentSink {
    let mapping: Mapping
    let mapper: RowMapper
    let pipeline: String
    let previousRun: Int64?
    let previous: [String: DocumentFingerprint]
    var queue: BatchQueue?
    var decoder: (any RowDecoder)?
    var counts = RunCounts()
    /// Set by the writer once the producer has finished.
    var conflicts: [KeyConflicts] = []
    var document = ""
    var open = false
    var isCancelled: @Sendable () -> Bool = { false }
    /// Where each document read is kept, compressed, under its fingerprint.
    var archive: DocumentArchive?
    private var archiving: ArchiveWriter?
    private var batch = PullBatch()
    static let batchSize = 1024
    private var fingerprint = StreamFingerprint()
    private var documentStart = RunCounts()
    private var documentRecords = 0
    /// The open (already unlinked) spool file of the current document, if it is being spooled.
    private var spool: Int32? = nil

    init(mapping: Mapping, period: Period, pipeline: String = "", previous: (run: Int64, documents: [String: DocumentFingerprint])? = nil) {
        self.mapping = mapping
        self.mapper = RowMapper(mapping: mapping, period: period)
        self.pipeline = pipeline
        self.previousRun = previous?.run
        self.previous = previous?.documents ?? [:]
        batch.items.reserveCapacity(Self.batchSize)
    }

    func begin(document name: String) throws {
        if open { _ = try end() }
        document = name
        counts.documents += 1
        open = true
        fingerprint = StreamFingerprint()
        documentStart = counts
        documentRecords = 0
        archiving?.abort()
        archiving = nil
        if previous[name] != nil {
            let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("hub-spool-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).part")
            let fd = Glibc.open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
            if fd >= 0 {
                unlink(path)   // the open descriptor keeps it until closed; nothing is left behind
                spool = fd
                decoder = nil
                return
            }
        }
        decoder = mapping.format.makeDecoder()
        archiving = try archive?.writer(source: mapping.source, period: mapper.period)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if !open { try begin(document: mapping.source) }
        if isCancelled() { throw PullCancelled() }
        fingerprint.update(bytes)
        if let spool {
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(spool, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 { if errno == EINTR { continue }; throw FetchError("写临时文件失败：\(String(cString: strerror(errno)))", retryable: true) }
                done += n
            }
            return
        }
        try archiving?.write(bytes)
        try decoder!.feed(bytes) { try handle($0) }
    }

    func end() throws -> DocumentInfo {
        guard open else { return DocumentInfo(rows: 0) }
        open = false
        let (size, hex) = fingerprint.finish()
        if let spool {
            defer { removeSpool() }
            if let archive, !archive.contains(source: mapping.source, period: mapper.period, fingerprint: hex) {
                archiving = try archive.writer(source: mapping.source, period: mapper.period)
            }
            if let prev = previous[document], let run = previousRun, prev.bytes == size, prev.fingerprint == hex, prev.pipeline == pipeline {
                if archiving != nil { try copySpoolToArchive(spool, fingerprint: hex) }
                counts.read += prev.read
                counts.quarantined += prev.quarantined
                counts.skipped += prev.skipped
                batch.items.append(.carryOver(prev, from: run))
                try send()
                return prev.info
            }
            // Different bytes: decode them from the spool.
            decoder = mapping.format.makeDecoder()
            try readSpool(spool) { chunk in
                if isCancelled() { throw PullCancelled() }
                try archiving?.write(chunk)
                try decoder!.feed(chunk) { try handle($0) }
            }
        }
        let info = try decoder!.finish { try handle($0) }
        try archiving?.finish(fingerprint: hex)
        archiving = nil
        var d = DocumentFingerprint(name: document, pipeline: pipeline, bytes: size, fingerprint: hex)
        d.read = counts.read - documentStart.read
        d.stored = documentRecords
        d.quarantined = counts.quarantined - documentStart.quarantined
        d.skipped = counts.skipped - documentStart.skipped
        d.info = info
        batch.items.append(.document(d))
        return info
    }

    /// Archives an identical re-delivery the archive does not hold yet (it was pruned, or the
    /// archive was switched on after the first pull), from the spool it was read into.
    private func copySpoolToArchive(_ spool: Int32, fingerprint: String) throws {
        try readSpool(spool) { try archiving?.write($0) }
        try archiving?.finish(fingerprint: fingerprint)
        archiving = nil
    }

    /// The spooled document from its start, in 1 MB pieces.
    private func readSpool(_ spool: Int32, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard lseek(spool, 0, SEEK_SET) == 0 else { throw FetchError("读临时文件失败：\(String(cString: strerror(errno)))", retryable: true) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(spool, buffer.baseAddress!, buffer.count)
            if n < 0 { if errno == EINTR { continue }; throw FetchError("读临时文件失败：\(String(cString: strerror(errno)))", retryable: true) }
            if n == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// Closes the spool file, if one is open (it was unlinked when created).
    func removeSpool() {
        if let spool { Glibc.close(spool); self.spool = nil }
    }

    /// Sends what is left of the current batch.
    func flush() {
        guard !batch.items.isEmpty else { return }
        try? send()
    }

    private func send() throws {
        batch.read = counts.read
        batch.counts = counts
        let full = batch
        batch = PullBatch()
        batch.items.reserveCapacity(Self.batchSize)
        try queue!.put(full)
    }

    private func quarantine(_ row: RawRow, _ reasons: [QuarantineReason]) {
        counts.quarantined += 1
        batch.items.append(.quarantine(QuarantineEntry(source: mapping.source, period: mapper.period.description, document: document,
                                                      row: row.number, raw: row.pairs.map { [$0.0, $0.1] }, reasons: reasons,
                                                      rowHash: Hashing.fingerprint(row.values))))
    }

    private func handle(_ row: RawRow) throws {
        if isCancelled() { throw PullCancelled() }
        counts.read += 1
        switch try mapper.map(row, document: document) {
        case .records(let records):
            documentRecords += records.count
            for r in records { batch.items.append(.record(r)) }
        case .skipped:
            counts.skipped += 1
        case .rejected(let reasons):
            quarantine(row, reasons)
        case .partial(let records, let reasons):
            documentRecords += records.count
            for r in records { batch.items.append(.record(r)) }
            quarantine(row, reasons)
        }
        if batch.items.count >= Self.batchSize { try send() }
    }
}

/// A 128-bit fingerprint of a byte stream that arrives in chunks of any size (two 64-bit lanes
/// over 8-byte words, then a finalising mix). For telling identical documents apart from
/// changed ones, not for security.
struct StreamFingerprint {
    private var a: UInt64 = 0x9E37_79B9_7F4A_7C15
    private var b: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private var pending: UInt64 = 0
    private var pendingCount = 0
    private(set) var total = 0

    @inline(__always) private mutating func mix(_ w: UInt64) {
        a = ((a ^ w) &* 0xFF51_AFD7_ED55_8CCD)
        a = (a << 27) | (a >> 37)
        b = (b &+ w) &* 0xC4CE_B9FE_1A85_EC53
        b = ((b << 31) | (b >> 33)) ^ a
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        var i = 0
        total += n
        while pendingCount > 0 && i < n {
            pending |= UInt64(bytes[i]) << (8 * UInt64(pendingCount)); pendingCount += 1; i += 1
            if pendingCount == 8 { mix(pending); pending = 0; pendingCount = 0 }
        }
        while i + 8 <= n { mix(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))); i += 8 }
        while i < n { pending |= UInt64(bytes[i]) << (8 * UInt64(pendingCount)); pendingCount += 1; i += 1 }
    }

    /// The byte count and the fingerprint as 32 hex digits.
    func finish() -> (Int, String) {
        var s = self
        s.mix(s.pending ^ (UInt64(s.pendingCount) << 56))
        s.mix(UInt64(s.total))
        func avalanche(_ x: UInt64) -> UInt64 {
            var x = x
            x ^= x >> 33; x = x &* 0xFF51_AFD7_ED55_8CCD; x ^= x >> 33; x = x &* 0xC4CE_B9FE_1A85_EC53; x ^= x >> 33
            return x
        }
        return (total, Hashing.hex(avalanche(s.a)) + Hashing.hex(avalanche(s.b ^ s.a)))
    }
}
