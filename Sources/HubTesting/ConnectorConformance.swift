import Foundation
import Hub

/// What every connector promises (`Connector`'s contract), written once and run by each
/// connector's tests: it streams a large feed in pieces without holding it; it stops when the
/// sink fails and passes that failure on; it says whether a failure is worth retrying; and no
/// secret from the environment appears in what it reports.
///
/// A connector's test describes its feeds; the kit drives them:
/// ```swift
/// let failures = ConnectorConformance(
///     serving: { bytes in /* a connector that fetches exactly `bytes` */ },
///     failing: [("missing file", missingFileFeed, retryable: true)],
///     secret: "s3cret").run()
/// ```
public struct ConnectorConformance {
    /// A connector set up to fetch one feed, and the context (period, environment) to fetch it with.
    public struct Feed {
        public var connector: any Connector
        public var context: FetchContext
        public init(connector: any Connector, context: FetchContext) { self.connector = connector; self.context = context }
    }

    public struct Failure: CustomStringConvertible, Sendable {
        public var check: String
        public var message: String
        public var description: String { "\(check): \(message)" }
    }

    /// A connector that fetches exactly these bytes as one document.
    public var serving: ([UInt8]) throws -> Feed
    /// Feeds that must fail, with whether trying again later may help.
    public var failing: [(name: String, feed: Feed, retryable: Bool)]
    /// A secret the failing feeds' environment holds, which must never appear in an error.
    public var secret: String?
    /// The size of the feed for the streaming check.
    public var largeFeedBytes = 8 << 20

    public init(serving: @escaping ([UInt8]) throws -> Feed, failing: [(name: String, feed: Feed, retryable: Bool)], secret: String? = nil) {
        self.serving = serving; self.failing = failing; self.secret = secret
    }

    public func run() -> [Failure] {
        var failures: [Failure] = []
        for (name, check) in [("streams", streams), ("stopsWhenTheSinkFails", stopsWhenTheSinkFails),
                              ("failuresAreClassified", failuresAreClassified), ("noSecretsInMessages", noSecretsInMessages)] as [(String, () throws -> [String])] {
            do {
                failures += try check().map { Failure(check: name, message: $0) }
            } catch {
                failures.append(Failure(check: name, message: "threw \(error)"))
            }
        }
        return failures
    }

    /// Records what a connector sends.
    final class RecordingSink: DocumentSink {
        var documents: [String] = []
        var writes: [Int] = []
        var bytes: [UInt8] = []
        var ended = 0
        var failAfterWrites: Int?
        /// Writes refused after the sink failed.
        var refused = 0
        struct SinkFailed: Error {}

        func begin(document name: String) throws { documents.append(name) }
        func write(_ chunk: UnsafeRawBufferPointer) throws {
            if let n = failAfterWrites, writes.count >= n { refused += 1; throw SinkFailed() }
            writes.append(chunk.count)
            bytes += chunk
        }
        func end() throws -> DocumentInfo { ended += 1; return DocumentInfo(rows: 0) }
    }

    static func pattern(_ n: Int) -> [UInt8] {
        // Text-like, not constant, so a connector that compresses or slices cannot fake it.
        var out = [UInt8](repeating: 0, count: n)
        var x: UInt32 = 2_463_534_242
        for i in 0..<n {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            out[i] = i % 64 == 63 ? 0x0A : 0x20 + UInt8(x % 90)
        }
        return out
    }

    func streams() throws -> [String] {
        let payload = Self.pattern(largeFeedBytes)
        let feed = try serving(payload)
        let sink = RecordingSink()
        try feed.connector.fetch(feed.context, into: sink)
        var problems: [String] = []
        if sink.bytes != payload { problems.append("the sink got \(sink.bytes.count) bytes, not the \(payload.count) served (or not the same bytes)") }
        if sink.writes.count < 2 { problems.append("a \(payload.count)-byte feed arrived in \(sink.writes.count) write(s): it was held whole") }
        if let biggest = sink.writes.max(), biggest > payload.count / 2 { problems.append("one write carried \(biggest) bytes: more than half the feed at once") }
        if sink.documents.count != 1 || sink.ended != 1 { problems.append("one document expected: begun \(sink.documents.count), ended \(sink.ended)") }
        return problems
    }

    func stopsWhenTheSinkFails() throws -> [String] {
        let feed = try serving(Self.pattern(largeFeedBytes))
        let sink = RecordingSink()
        sink.failAfterWrites = 1
        do {
            try feed.connector.fetch(feed.context, into: sink)
            // A connector that wrote once never met the failure (`streams` reports it).
            return sink.refused == 0 ? [] : ["the fetch finished although the sink failed (\(sink.refused) writes refused)"]
        } catch {
            var problems: [String] = []
            if sink.refused > 1 { problems.append("it went on writing after the sink failed (\(sink.refused) writes refused)") }
            if !(error is RecordingSink.SinkFailed) && !(error is FetchError) { problems.append("unexpected error \(error)") }
            return problems
        }
    }

    func failuresAreClassified() throws -> [String] {
        var problems: [String] = []
        for f in failing {
            do {
                try f.feed.connector.fetch(f.feed.context, into: RecordingSink())
                problems.append("\(f.name): did not fail")
            } catch let e as FetchError {
                if e.retryable != f.retryable { problems.append("\(f.name): retryable is \(e.retryable), expected \(f.retryable) (\(e.message))") }
                if e.message.isEmpty { problems.append("\(f.name): an empty message") }
            } catch {
                problems.append("\(f.name): threw \(type(of: error)), not FetchError: \(error)")
            }
        }
        return problems
    }

    func noSecretsInMessages() throws -> [String] {
        guard let secret, !secret.isEmpty else { return [] }
        var problems: [String] = []
        for f in failing {
            do { try f.feed.connector.fetch(f.feed.context, into: RecordingSink()) } catch {
                for text in ["\(error)", String(describing: error), (error as? FetchError)?.message ?? ""] where text.contains(secret) {
                    problems.append("\(f.name): the secret appears in \"\(text)\"")
                }
            }
        }
        return problems
    }
}
