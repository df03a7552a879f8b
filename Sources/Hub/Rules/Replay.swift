import Foundation
public import Logging

/// What a replay found: for one month, the alerts the changed mappings and rules would raise
/// and withdraw against what the live store holds. Saved as JSON for the 映射与规则 page.
public struct ReplayReport: Codable, Sendable, Equatable {
    /// How one source's month was read again.
    public struct SourceLine: Codable, Sendable, Equatable {
        public enum Status: String, Codable, Sendable {
            /// Read again from the archive through the changed mapping.
            case replayed
            /// The mapping and types are those the month was read with: records as stored.
            case unchanged
            /// The month's documents are not (or no longer) in the archive: records as stored.
            case notArchived = "not_archived"
            /// The live store has no successful run of this source for the month.
            case noRun = "no_run"
            /// Reading again failed (the changed mapping refuses the documents): records as stored.
            case failed
        }
        public var source: String
        public var status: Status
        public var documents = 0
        public var read = 0, stored = 0, quarantined = 0
        public var message: String?
    }

    /// One alert that differs, its subject's ID numbers masked.
    public struct Example: Codable, Sendable, Equatable {
        public var subject: String
        public var before: String?
        public var after: String?
    }

    /// One rule's difference.
    public struct RuleLine: Codable, Sendable, Equatable {
        public var rule: String
        public var title: String
        /// Alerts of the month in the live store, and after the replay.
        public var before = 0, after = 0
        public var raised = 0, withdrawn = 0, changed = 0
        public var raisedExamples: [Example] = []
        public var withdrawnExamples: [Example] = []
        public var changedExamples: [Example] = []
        public var differs: Bool { raised + withdrawn + changed > 0 }
    }

    public var period: String
    public var at: String
    public var mappings: String
    public var rules: String
    public var sources: [SourceLine] = []
    public var ruleLines: [RuleLine] = []
    public var seconds = 0.0

    public var raised: Int { ruleLines.reduce(0) { $0 + $1.raised } }
    public var withdrawn: Int { ruleLines.reduce(0) { $0 + $1.withdrawn } }
    public var changed: Int { ruleLines.reduce(0) { $0 + $1.changed } }

    /// The report as the terminal shows it.
    public var text: String {
        var out = "重放 \(period)（映射 \(mappings)，规则 \(rules)）：\n"
        let statusText: [SourceLine.Status: String] = [
            .replayed: "按新映射重读", .unchanged: "映射未变，沿用库中记录", .notArchived: "原始文件不在归档中，沿用库中记录",
            .noRun: "本月没有成功的拉取", .failed: "重读失败，沿用库中记录",
        ]
        for s in sources {
            var line = "  \(s.source)：\(statusText[s.status] ?? s.status.rawValue)"
            if s.status == .replayed { line += "（\(s.documents) 个文件，读取 \(s.read) 行，入库 \(s.stored)，隔离 \(s.quarantined)）" }
            if let m = s.message { line += "：\(m)" }
            out += line + "\n"
        }
        if !ruleLines.contains(where: \.differs) {
            out += "预警没有差异（\(ruleLines.reduce(0) { $0 + $1.after }) 条）。上线不会新增、撤回或改变任何预警。\n"
            return out
        }
        out += "预警差异：新增 \(raised)，撤回 \(withdrawn)，内容变化 \(changed)\n"
        for r in ruleLines where r.differs {
            out += "  \(r.rule)（\(r.title)）：现有 \(r.before) 条 → 重放后 \(r.after) 条；新增 \(r.raised)，撤回 \(r.withdrawn)，变化 \(r.changed)\n"
            for e in r.raisedExamples { out += "    + \(e.subject)：\(e.after ?? "")\n" }
            for e in r.withdrawnExamples { out += "    − \(e.subject)：\(e.before ?? "")\n" }
            for e in r.changedExamples { out += "    ~ \(e.subject)：\(e.before ?? "") → \(e.after ?? "")\n" }
        }
        out += "（只在临时副本中重放，监测库未改动；已处理过的案件上线后照规定保留。）\n"
        return out
    }
}

/// A replay that could not be completed (a changed mapping refuses the month's documents).
public struct ReplayFailed: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// `hubd replay`: one month's archived documents read again through changed mappings, the
/// changed rules evaluated over the result, and the alerts compared with the live store's —
/// all in a scratch copy of the store, so nothing live changes.
///
/// Records of other months stay as stored (rules that look back see them as live does); a
/// source whose mapping did not change keeps its records as stored.
public struct Replay {
    public var live: any HubStore
    /// A copy of the live store, which the replay may change.
    public var scratch: any HubStore
    public var archive: DocumentArchive
    public var mappings: [Mapping]
    public var types: TypeCatalog
    public var rules: [Rule]
    public var params: RuleParams
    public var mappingsLabel = ""
    public var rulesLabel = ""
    public var examplesPerKind = 5
    public var logger = Logger(label: "hub.replay")

    public init(live: any HubStore, scratch: any HubStore, archive: DocumentArchive, mappings: [Mapping], types: TypeCatalog,
                rules: [Rule], params: RuleParams) {
        self.live = live; self.scratch = scratch; self.archive = archive; self.mappings = mappings
        self.types = types; self.rules = rules; self.params = params
    }

    public func run(period: Period) throws -> ReplayReport {
        let started = Date()
        var report = ReplayReport(period: period.description, at: Timestamp.now(), mappings: mappingsLabel, rules: rulesLabel)
        for m in mappings.sorted(by: { $0.source < $1.source }) {
            report.sources.append(try replay(m, period: period))
        }
        let engine = try RuleEngine(rules: rules, params: params, types: types, store: scratch)
        let after = try engine.evaluate(period: period)
        report.ruleLines = try difference(after: after, period: period)
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    func replay(_ m: Mapping, period: Period) throws -> ReplayReport.SourceLine {
        var line = ReplayReport.SourceLine(source: m.source, status: .noRun)
        guard let run = try live.lastSuccessfulRun(source: m.source, period: period) else { return line }
        // In the order they were read: pages by number (第 2 页 before 第 10 页), files by name.
        let docs = try live.documents(ofRun: run).sorted { Self.naturalKey($0.name).lexicographicallyPrecedes(Self.naturalKey($1.name)) }
        line.documents = docs.count
        guard !docs.isEmpty, docs.allSatisfy({ archive.contains(source: m.source, period: period, fingerprint: $0.fingerprint) }) else {
            line.status = .notArchived
            return line
        }
        let pipeline = Pull.pipelineKey(m)
        if docs.allSatisfy({ $0.pipeline == pipeline }) {
            line.status = .unchanged
            return line
        }
        _ = try scratch.removeRecords(source: m.source, period: period, types: m.outputs.map(\.type))
        let connector = ArchivedDocumentsConnector(archive: archive, documents: docs.map { ($0.name, $0.fingerprint) })
        var pull = Pull(mapping: m, connector: connector, store: scratch, logger: logger)
        pull.progress = nil
        do {
            let r = try pull.run(period: period)
            line.status = .replayed
            line.read = r.counts.read; line.stored = r.counts.inserted + r.counts.updated + r.counts.unchanged
            line.quarantined = r.counts.quarantined
        } catch let e as PullError {
            // The month's records are already out of the copy: evaluating without them would
            // list false withdrawals. The replay stops and says why.
            throw ReplayFailed(description: "\(m.source)：按新映射重读 \(period) 的归档文件失败，重放中止：\(e.message)")
        }
        return line
    }

    /// A name as text and number parts, so that numbers sort by value.
    static func naturalKey(_ name: String) -> [String] {
        var parts: [String] = []
        var current = "", digits = false
        for ch in name {
            let d = ch.isASCII && ch.isNumber
            if !current.isEmpty, d != digits { parts.append(digits ? String(repeating: "0", count: max(0, 20 - current.count)) + current : current); current = "" }
            current.append(ch); digits = d
        }
        if !current.isEmpty { parts.append(digits ? String(repeating: "0", count: max(0, 20 - current.count)) + current : current) }
        return parts
    }

    func difference(after: [Alert], period: Period) throws -> [ReplayReport.RuleLine] {
        struct Key: Hashable { var rule: String; var kind: String; var subject: String }
        var before: [Key: (title: String, message: String)] = [:]
        try live.forEachAlert(period: period.description) { a in
            before[Key(rule: a.rule, kind: a.subjectKind, subject: a.subjectID)] = (a.title, a.message)
        }
        var lines: [String: ReplayReport.RuleLine] = [:]
        func line(_ rule: String, _ title: String) -> ReplayReport.RuleLine {
            lines[rule] ?? ReplayReport.RuleLine(rule: rule, title: title)
        }
        var seen = Set<Key>()
        for a in after {
            let k = Key(rule: a.rule, kind: a.subjectKind.rawValue, subject: a.subjectID)
            seen.insert(k)
            var l = line(a.rule, a.title)
            l.after += 1
            let subject = ResidentID.maskEmbedded(a.subjectID)
            if let b = before[k] {
                l.before += 1
                if b.message != a.message {
                    l.changed += 1
                    if l.changedExamples.count < examplesPerKind {
                        l.changedExamples.append(.init(subject: subject, before: ResidentID.maskEmbedded(b.message), after: ResidentID.maskEmbedded(a.message)))
                    }
                }
            } else {
                l.raised += 1
                if l.raisedExamples.count < examplesPerKind { l.raisedExamples.append(.init(subject: subject, after: ResidentID.maskEmbedded(a.message))) }
            }
            lines[a.rule] = l
        }
        for k in before.keys.sorted(by: { ($0.rule, $0.subject) < ($1.rule, $1.subject) }) where !seen.contains(k) {
            let b = before[k]!
            var l = line(k.rule, b.title)
            l.before += 1
            l.withdrawn += 1
            if l.withdrawnExamples.count < examplesPerKind {
                l.withdrawnExamples.append(.init(subject: ResidentID.maskEmbedded(k.subject), before: ResidentID.maskEmbedded(b.message)))
            }
            lines[k.rule] = l
        }
        // Rules in the changed set first, in their order; then rules it no longer has.
        let order = rules.map(\.name)
        return lines.values.sorted { a, b in
            let ia = order.firstIndex(of: a.rule) ?? Int.max, ib = order.firstIndex(of: b.rule) ?? Int.max
            return ia != ib ? ia < ib : a.rule < b.rule
        }
    }
}

extension ReplayReport {
    static let fileName = ".replay-last.json"

    /// Keeps the report beside the archive, where the 映射与规则 page finds it.
    public static func save(_ report: ReplayReport, in archive: DocumentArchive) throws {
        try FileManager.default.createDirectory(at: archive.folder, withIntermediateDirectories: true)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try enc.encode(report).write(to: archive.folder.appendingPathComponent(fileName), options: .atomic)
    }

    /// The last replay's report, if any.
    public static func last(in archive: DocumentArchive) -> ReplayReport? {
        guard let data = try? Data(contentsOf: archive.folder.appendingPathComponent(fileName)) else { return nil }
        return try? JSONDecoder().decode(ReplayReport.self, from: data)
    }
}
