import Foundation
public import Logging

/// The result of one pull.
public struct PullResult: Sendable {
    public var runID: Int64
    public var source: String
    public var period: Period
    public var counts: RunCounts
    public var seconds: Double
}

/// A pull that failed; the store holds the failed run and nothing else from it.
public struct PullError: Error, Sendable, CustomStringConvertible {
    public var runID: Int64
    public var source: String
    public var message: String
    public var retryable: Bool
    public var retryAfter: Double? = nil
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
    public var store: any MonitoringStore
    public var logger: Logger
    /// Called every `progressEvery` rows and at the end.
    public var progress: ((RunCounts) -> Void)?
    public var progressEvery = 10_000
    /// Checked at every row: returning true stops the pull, which then rolls back whole.
    public var isCancelled: @Sendable () -> Bool = { false }

    public init(mapping: Mapping, connector: any Connector, store: any MonitoringStore, logger: Logger = Logger(label: "hub.pull")) {
        self.mapping = mapping; self.connector = connector; self.store = store; self.logger = logger
    }

    public func run(period: Period, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PullResult {
        let started = Date()
        try store.prepare(mapping.outputs.map(\.type))
        let runID = try store.startRun(source: mapping.source, period: period, mappingVersion: mapping.version)
        var log = logger
        log[metadataKey: "run"] = "\(runID)"
        log[metadataKey: "source"] = "\(mapping.source)"
        log.info("拉取开始", metadata: ["period": "\(period)"])
        let sink = PullSink(mapping: mapping, period: period, progress: progress, every: progressEvery)
        sink.isCancelled = isCancelled
        do {
            let counts = try store.withRun(runID) { writer in
                sink.writer = writer
                try connector.fetch(FetchContext(source: mapping.source, period: period, environment: environment), into: sink)
                if sink.open { _ = try sink.end() }
                return sink.counts
            }
            progress?(counts)
            let seconds = Date().timeIntervalSince(started)
            log.info("拉取完成", metadata: ["read": "\(counts.read)", "inserted": "\(counts.inserted)", "updated": "\(counts.updated)",
                                           "unchanged": "\(counts.unchanged)", "quarantined": "\(counts.quarantined)", "seconds": "\(seconds)"])
            return PullResult(runID: runID, source: mapping.source, period: period, counts: counts, seconds: seconds)
        } catch {
            let message = Self.describe(error, document: sink.document)
            log.error("拉取失败", metadata: ["error": "\(message)"])
            try? store.failRun(runID, error: message, counts: sink.counts)
            throw PullError(runID: runID, source: mapping.source, message: message, retryable: (error as? FetchError)?.retryable ?? false,
                            retryAfter: (error as? FetchError)?.retryAfter)
        }
    }

    static func describe(_ error: any Error, document: String) -> String {
        let at = document.isEmpty ? "" : "（\(document)）"
        switch error {
        case let e as FetchError: return e.message
        case let e as DecodeError: return e.message + at
        case let e as RowMapper.MissingColumns: return e.description + at
        case let e as DiagnosticList: return e.description
        case is PullCancelled: return "服务停止，本次拉取已整体回滚，下次启动时重新拉取"
        default: return String(describing: error)
        }
    }
}

/// Thrown inside a pull when the service is shutting down.
struct PullCancelled: Error {}

/// Receives a connector's documents and drives the decoder, mapper and writer.
final class PullSink: DocumentSink {
    let mapping: Mapping
    let mapper: RowMapper
    var writer: (any RunWriter)?
    var decoder: (any RowDecoder)?
    var counts = RunCounts()
    var document = ""
    var open = false
    let progress: ((RunCounts) -> Void)?
    let every: Int
    var isCancelled: @Sendable () -> Bool = { false }

    init(mapping: Mapping, period: Period, progress: ((RunCounts) -> Void)?, every: Int) {
        self.mapping = mapping
        self.mapper = RowMapper(mapping: mapping, period: period)
        self.progress = progress
        self.every = every
    }

    func begin(document name: String) throws {
        if open { _ = try end() }
        document = name
        decoder = mapping.format.makeDecoder()
        counts.documents += 1
        open = true
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if !open { try begin(document: mapping.source) }
        try decoder!.feed(bytes) { try handle($0) }
    }

    func end() throws -> DocumentInfo {
        guard open else { return DocumentInfo(rows: 0) }
        open = false
        return try decoder!.finish { try handle($0) }
    }

    private func handle(_ row: RawRow) throws {
        if isCancelled() { throw PullCancelled() }
        counts.read += 1
        switch try mapper.map(row, document: document) {
        case .records(let records):
            for r in records {
                switch try writer!.upsert(r) {
                case .inserted: counts.inserted += 1
                case .updated: counts.updated += 1
                case .unchanged: counts.unchanged += 1
                }
            }
        case .skipped:
            counts.skipped += 1
        case .rejected(let reasons):
            counts.quarantined += 1
            try writer!.quarantine(QuarantineEntry(source: mapping.source, period: mapper.period.description, document: document,
                                                   row: row.number, raw: row.pairs.map { [$0.0, $0.1] }, reasons: reasons,
                                                   rowHash: Hashing.fingerprint(row.values)))
        }
        if counts.read % every == 0 { progress?(counts) }
    }
}
