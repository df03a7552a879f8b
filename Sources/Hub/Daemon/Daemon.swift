import Foundation
import Logging
import Synchronization

/// The scheduling brain of `hubd serve`: which source is due, pulling it with bounded retries,
/// evaluating the rules for what changed, checking each feed's delivery calendar, and
/// reloading mappings and rules when their files change. `tick(now:)` does one pass; the
/// service calls it every few seconds. The clock is passed in, so tests control time.
///
/// Shared by the scheduler, the reload service (SIGHUP, file changes) and the web, each on its
/// own thread: what was loaded is one immutable `Loaded` value swapped whole under a `Mutex`
/// (readers take a snapshot), the retry state has its own `Mutex`, and reloads are serialised
/// by a third. `settings`, `logger` and `notifier` are set before the daemon starts and only
/// read after; whether a digest is being sent is a fourth `Mutex`.
public final class Daemon: @unchecked Sendable {
    /// What the mappings folder held at the last (re)load: the last good version of each file.
    public struct Loaded: Sendable {
        public var types = TypeCatalog()
        /// The last good version of each mapping, by file name.
        public var mappings: [String: Mapping] = [:]
        public var rules: [Rule] = []
        public var params = RuleParams()
        /// Errors of files that were refused, by file name (the previous version keeps running).
        public var problems: [String: [Diagnostic]] = [:]
        /// Rules that cannot fire with the mappings loaded (fields no mapping fills), in Chinese.
        public var cannotFire: [String] = []
    }
    struct Retry { var attempt: Int; var waited: Double; var at: Date; var slot: Date }
    public struct Settings: Sendable {
        public var backoff = Backoff()
        public var utcOffset = 8 * 3600
        /// A feed not delivered yet is looked for again this often until its due day (plus
        /// `lateGraceDays`) has passed…
        public var waitingInterval: Double = 3600
        public var lateGraceDays = 1
        /// …then a late-delivery alert is raised and it is looked for this often until it comes.
        public var lateInterval: Double = 86400
        public init() {}
    }

    public let store: any HubStore
    public let mappingsDirectory: URL
    public let connectors: ConnectorRegistry
    public let settings: Settings
    public let logger: Logger
    /// Set on shutdown: a pull in flight stops at its next row and rolls back.
    public let cancellation = CancellationFlag()
    /// Sends the digests of new and overdue cases on their schedule (hub.yaml `notifications`);
    /// set before the daemon starts.
    public var notifier: Notifier?
    /// Whether a digest is being sent (on its own thread: retries must not hold up pulls).
    private let notifying = Mutex(false)
    /// Where pulls keep the documents they read; pruned past its retention once a day. Set
    /// before the daemon starts.
    public var archive: DocumentArchive?
    /// The day the archive was last pruned.
    private let prunedOn = Mutex<CivilDate?>(nil)
    /// Scheduled backups (hub.yaml `backup:`): when, where, how many; and how the store takes one.
    public var backups: BackupSettings?
    public var takeBackup: (@Sendable (String) throws -> BackupManifest)?
    private let backedUpSlot = Mutex<Date?>(nil)
    private let backingUp = Mutex(false)
    /// The day the audit chain's head was last written to the log.
    private let anchoredOn = Mutex<CivilDate?>(nil)

    private let state = Mutex(Loaded())
    /// Modification times of the files as last loaded; held for the whole of a reload.
    private let stamps = Mutex<[String: Date]>([:])
    private let retries = Mutex<[String: Retry]>([:])

    /// What is loaded now: one consistent snapshot.
    public var loaded: Loaded { state.withLock { $0 } }
    public var types: TypeCatalog { loaded.types }
    public var mappings: [String: Mapping] { loaded.mappings }
    public var rules: [Rule] { loaded.rules }
    public var params: RuleParams { loaded.params }
    public var problems: [String: [Diagnostic]] { loaded.problems }

    public init(store: any HubStore, mappingsDirectory: URL, connectors: ConnectorRegistry, settings: Settings = Settings(),
                logger: Logger = Logger(label: "hub.daemon")) {
        self.store = store; self.mappingsDirectory = mappingsDirectory; self.connectors = connectors
        self.settings = settings; self.logger = logger
    }

    // MARK: hot reload

    /// Reloads files that changed since the last look (or all, with `force`, as on SIGHUP).
    /// A broken file is refused with its errors and the previous version keeps running.
    @discardableResult
    public func reload(force: Bool = false) -> Bool {
        stamps.withLock { stamps in reload(force: force, stamps: &stamps) }
    }

    private func reload(force: Bool, stamps: inout [String: Date]) -> Bool {
        let before = loaded
        var types = before.types, rules = before.rules, params = before.params, problems = before.problems, mappings = before.mappings
        // Readers see the old set or the new one whole, never a mix.
        defer {
            let cannotFire = RuleCoverage.describe(RuleCoverage.gaps(rules: rules, mappings: Array(mappings.values), types: types))
            if cannotFire != before.cannotFire { for line in cannotFire { logger.warning("\(line)") } }
            let next = Loaded(types: types, mappings: mappings, rules: rules, params: params, problems: problems, cannotFire: cannotFire)
            state.withLock { $0 = next }
        }
        let fm = FileManager.default
        func stamp(_ url: URL) -> Date { ((try? fm.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date) ?? .distantPast }
        var changed = force
        let typesDir = MappingsFolder.types(of: mappingsDirectory)
        let rulesDir = MappingsFolder.rules(of: mappingsDirectory)
        for dir in [typesDir, rulesDir] {
            for f in ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []) where f.hasSuffix(".yaml") {
                let u = dir.appendingPathComponent(f)
                if stamps[u.path] != stamp(u) { changed = true; stamps[u.path] = stamp(u) }
            }
        }
        if changed || types.names.isEmpty {
            do {
                types = try TypeCatalog.load(directory: typesDir)
                problems["types"] = nil
            } catch {
                problems["types"] = error.items
                logger.error("记录类型有错，沿用上一版", metadata: ["errors": "\(error.description)"])
            }
            let (r, p, ruleProblems) = RuleLoader.loadDirectory(rulesDir, types: types)
            if ruleProblems.contains(where: { $0.location.file.hasSuffix("params.yaml") }) {
                // Broken parameters would unload every rule that uses them: keep the last good set whole.
                problems["rules"] = ruleProblems
            } else {
                // A rule whose file is now broken keeps running in its previous version.
                let brokenFiles = Set(ruleProblems.map(\.location.file))
                let kept = rules.filter { old in brokenFiles.contains(old.file) && !r.contains { $0.name == old.name } }
                rules = (r + kept).sorted { $0.name < $1.name }
                params = p
                problems["rules"] = ruleProblems.isEmpty ? nil : ruleProblems
            }
            if !ruleProblems.isEmpty { logger.error("规则文件有错，沿用上一版", metadata: ["errors": "\(DiagnosticList(ruleProblems))"]) }
        }
        let loader = MappingLoader(types: types, connectors: connectors)
        let files = ((try? fm.contentsOfDirectory(atPath: mappingsDirectory.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        for f in files {
            let u = mappingsDirectory.appendingPathComponent(f)
            guard changed || stamps[u.path] != stamp(u) else { continue }
            stamps[u.path] = stamp(u)
            do {
                let m = try loader.load(file: u)
                if mappings[f]?.version != m.version { logger.info("映射已加载", metadata: ["file": "\(f)", "version": "\(m.version)"]) }
                mappings[f] = m
                problems[f] = nil
            } catch {
                problems[f] = error.items
                logger.error("映射文件有错，沿用上一版", metadata: ["file": "\(f)", "errors": "\(error.description)"])
            }
        }
        for f in mappings.keys where !files.contains(f) { mappings[f] = nil; logger.info("映射已移除", metadata: ["file": "\(f)"]) }
        return changed
    }

    // MARK: scheduling

    /// The period a slot pulls: last month for monthly schedules (departments deliver last
    /// month's data early in the month), the month of the day before the slot otherwise.
    public func period(for slot: Date, schedule: Schedule) -> Period {
        let local = DateComponentsLite(Int(slot.timeIntervalSince1970) + settings.utcOffset)
        let p = Period(year: local.year, month: local.month)!
        if schedule.description.lowercased().hasPrefix("monthly") { return p.adding(months: -1) }
        let dayBefore = DateComponentsLite(Int(slot.timeIntervalSince1970) + settings.utcOffset - 86400)
        return Period(year: dayBefore.year, month: dayBefore.month)!
    }

    /// Sources whose latest slot has no successful run since: a slot missed while the server
    /// was off runs once, not once per missed slot.
    public func due(now: Date) throws -> [(mapping: Mapping, slot: Date, period: Period)] {
        let current = mappings
        let retries = self.retries.withLock { $0 }
        var out: [(Mapping, Date, Period)] = []
        for (_, m) in current.sorted(by: { $0.key < $1.key }) {
            guard let text = m.schedule, let s = try? Schedule(text, utcOffset: settings.utcOffset),
                  let slot = s.previous(atOrBefore: now) else { continue }
            let runs = try store.runs(source: m.source, limit: 20)
            let done = runs.contains { r in r.status == .succeeded && (ISO8601DateFormatter().date(from: r.startedAt) ?? .distantPast) >= slot }
            if done { continue }
            if let r = retries[m.source], r.slot == slot, r.at > now { continue }   // waiting to retry
            out.append((m, slot, period(for: slot, schedule: s)))
        }
        return out
    }

    /// One pass: reload changed files, mark runs left 'running' by a killed process, pull what
    /// is due (one source at a time), evaluate rules for what changed, check deliveries.
    public func tick(now: Date = Date(), environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        reload()
        notify(now: now, environment: environment)
        logAuditHead(now: now)
        pruneArchive(now: now)
        backUp(now: now)
        let loaded = self.loaded
        // Runs that were stored but whose rules were not (the process stopped in between).
        // Several workers on one shared store each claim what they do: a run's evaluation, a
        // source's pull; what another worker holds is skipped (it is being done).
        for (id, p) in try store.runsAwaitingRules() {
            if cancellation.isSet { return }
            guard let claim = try store.claim("rules:\(id)") else { continue }
            defer { claim.release() }
            guard try store.runsAwaitingRules().contains(where: { $0.id == id }) else { continue }
            if let period = Period(p) { try evaluateRules(runID: id, period: period, loaded: loaded, log: logger) }
        }
        for (m, slot, period) in try due(now: now) {
            if cancellation.isSet { return }
            guard let claim = try store.claim("pull:" + m.source) else { continue }
            defer { claim.release() }
            // Another worker may have finished it between the look and the claim.
            guard try due(now: now).contains(where: { $0.mapping.source == m.source }) else { continue }
            var log = logger
            log[metadataKey: "source"] = "\(m.source)"
            let loader = MappingLoader(types: loaded.types, connectors: connectors)
            var pull = Pull(mapping: m, connector: try loader.connector(for: m), store: store, logger: log)
            pull.isCancelled = { [cancellation] in cancellation.isSet }
            // The run is dated by the daemon's clock, which `due(now:)` compares slots with.
            pull.clock = { now }
            pull.archive = archive
            do {
                let r = try pull.run(period: period, environment: environment)
                retries.withLock { $0[m.source] = nil }
                try checkDelivery(m, period: period, counts: r.counts, now: now)
                try raiseConflicts(m, r)
                if let evaluating = try store.claim("rules:\(r.runID)") {
                    defer { evaluating.release() }
                    // Another worker may have evaluated it between the commit and the claim.
                    if try store.runsAwaitingRules().contains(where: { $0.id == r.runID }) {
                        try evaluateRules(runID: r.runID, period: period, loaded: loaded, log: log)
                    }
                }
            } catch let e as PullError where e.notDelivered {
                // Not there yet: wait for it, never give up on it for the month.
                if cancellation.isSet { return }
                let overdue = isOverdue(m, period: period, now: now)
                if overdue {
                    try store.raiseFeedAlert(source: m.source, period: period.description, kind: "late",
                                             message: "\(m.department.isEmpty ? m.title : m.department)：\(period) 的数据逾期未送达（\(e.message)），每天检查一次，送到后自动拉取")
                }
                let wait = overdue ? settings.lateInterval : settings.waitingInterval
                // Waiting spends none of the retry budget: once the feed is there, a real failure
                // gets its full round of retries.
                let retry = Retry(attempt: 1, waited: 0, at: now.addingTimeInterval(wait), slot: slot)
                retries.withLock { $0[m.source] = retry }
                log.notice("数据尚未送达，稍后再看", metadata: ["in_seconds": "\(Int(wait))", "overdue": "\(overdue)", "error": "\(e.message)"])
            } catch let e as PullError {
                if cancellation.isSet { return }
                let previous = retries.withLock { $0[m.source] }.flatMap { $0.slot == slot ? $0 : nil }
                let attempt = (previous?.attempt ?? 1) + 1
                if e.retryable, var d = settings.backoff.delay(beforeAttempt: attempt, waitedSoFar: previous?.waited ?? 0, random: Double.random(in: 0...1)) {
                    // Honour the server's Retry-After, within the backoff's cap.
                    if let after = e.retryAfter { d = min(max(d, after), settings.backoff.cap) }
                    let retry = Retry(attempt: attempt, waited: (previous?.waited ?? 0) + d, at: now.addingTimeInterval(d), slot: slot)
                    retries.withLock { $0[m.source] = retry }
                    log.warning("拉取失败，稍后重试", metadata: ["attempt": "\(attempt)", "in_seconds": "\(Int(d))", "error": "\(e.message)"])
                } else {
                    // Given up for this slot: no more tries until the next slot.
                    let retry = Retry(attempt: attempt, waited: previous?.waited ?? 0, at: .distantFuture, slot: slot)
                    retries.withLock { $0[m.source] = retry }
                    try store.raiseFeedAlert(source: m.source, period: period.description, kind: "failed",
                                             message: "\(m.department.isEmpty ? m.title : m.department)：拉取失败，已停止重试：\(e.message)")
                    log.error("拉取失败，不再重试", metadata: ["error": "\(e.message)"])
                }
            }
        }
        try checkLateDeliveries(now: now)
    }

    /// Evaluates the rules for the subjects a run touched and stores the alerts, marking the run
    /// evaluated in the same transaction.
    func evaluateRules(runID: Int64, period: Period, loaded: Loaded, log: Logger) throws {
        let engine = try RuleEngine(rules: loaded.rules, params: loaded.params, types: loaded.types, store: store)
        let saved = try engine.evaluateAndStore(period: period, only: try engine.subjects(touchedBy: runID), into: store, evaluatedRun: runID).totals
        log.info("规则评估完成", metadata: ["run": "\(runID)", "period": "\(period)", "new_alerts": "\(saved.newAlerts)", "new_cases": "\(saved.newCases)",
                                        "withdrawn": "\(saved.withdrawn)",
                                        "raised_list": "\(saved.raisedList.map(\.text).joined(separator: "；"))",
                                        "withdrawn_list": "\(saved.withdrawnList.map(\.text).joined(separator: "；"))"])
    }

    /// Writes the audit chain's head to the log once a day (and at start): an anchor kept
    /// outside the store, so that deleting the newest entries is found (`hubd audit verify --anchor`).
    func logAuditHead(now: Date) {
        let today = CivilDate(daysSinceEpoch: Int((now.timeIntervalSince1970 + Double(settings.utcOffset)) / 86400))
        guard anchoredOn.withLock({ last in if last == today { return false }; last = today; return true }) else { return }
        do {
            guard let head = try store.auditLog(limit: 1).first else { return }
            logger.notice("审计链头", metadata: ["audit_head": "\(head.id):\(head.hash)"])
        } catch {
            logger.error("读取审计链头出错", metadata: ["error": "\(error)"])
        }
    }

    /// Takes the scheduled backup when its slot has come and the folder has none from that slot
    /// or later (by the sortable file names, which come from the daemon's clock), then keeps only
    /// the newest `keep`. On a thread of its own: copying a large store must not hold up pulls.
    func backUp(now: Date) {
        guard let b = backups, let take = takeBackup, let slot = b.schedule.previous(atOrBefore: now) else { return }
        guard backedUpSlot.withLock({ $0 != slot }) else { return }
        // A file without its manifest was cut short (the service stopped mid-copy): not a backup.
        let complete = b.existing().filter { FileManager.default.fileExists(atPath: BackupManifest.url(forBackup: $0.path).path) }
        if let newest = complete.last, newest.lastPathComponent >= b.file(at: slot).lastPathComponent {
            backedUpSlot.withLock { $0 = slot }
            return
        }
        guard backingUp.withLock({ busy in if busy { return false }; busy = true; return true }) else { return }
        // Marked before the thread starts so the next tick does not start another; a failure
        // unmarks it after a pause (no retry on every tick of a store that cannot be copied).
        backedUpSlot.withLock { $0 = slot }
        let file = b.file(at: now).path
        let (store, logger) = (self.store, self.logger)
        let thread = Thread { [self] in
            defer { backingUp.withLock { $0 = false } }
            let m: BackupManifest
            do { m = try take(file) } catch {
                logger.error("备份失败，10 分钟后再试", metadata: ["file": "\(file)", "error": "\(error)"])
                // Only what this attempt wrote (copy(to:) removes its file on failure).
                try? FileManager.default.removeItem(at: BackupManifest.url(forBackup: file))
                Thread.sleep(forTimeInterval: 600)
                backedUpSlot.withLock { if $0 == slot { $0 = nil } }
                return
            }
            let gone = b.prune()
            logger.notice("已备份", metadata: ["file": "\(file)", "bytes": "\(m.bytes)", "seconds": "\(m.seconds)",
                                             "audit_head": "\(m.auditHead.map { "\($0.id):\($0.hash)" } ?? "")", "removed": "\(gone.count)"])
            do {
                try store.audit("hubd", "备份", target: file, detail: "计划备份，\(m.bytes) 字节，用时 \(String(format: "%.1f", m.seconds)) 秒，删除旧备份 \(gone.count) 个",
                                address: "local")
            } catch {
                logger.error("备份已完成，但写审计日志出错", metadata: ["file": "\(file)", "error": "\(error)"])
            }
        }
        thread.name = "hub.backup"
        thread.start()
    }

    /// Waits until no scheduled backup is being taken (tests, shutdown).
    public func waitForBackup(timeout: Double = 600) {
        let end = Date().addingTimeInterval(timeout)
        while backingUp.withLock({ $0 }) && Date() < end { Thread.sleep(forTimeInterval: 0.02) }
    }

    /// Deletes department records and archived documents past their retention, at the first
    /// tick of each day (one audit entry when anything went).
    func pruneArchive(now: Date) {
        let today = CivilDate(daysSinceEpoch: Int((now.timeIntervalSince1970 + Double(settings.utcOffset)) / 86400))
        guard prunedOn.withLock({ last in if last == today { return false }; last = today; return true }) else { return }
        do {
            let done = try Retention.apply(types: loaded.types, store: store, archive: archive, today: today, by: "hubd", address: "local")
            guard !done.isEmpty else { return }
            logger.notice("已按保留期删除", metadata: ["records": "\(done.records)", "alerts_masked": "\(done.alertsMasked)",
                                                  "archive_months": "\(done.archive.count)", "files": "\(done.archive.reduce(0) { $0 + $1.files })"])
        } catch {
            logger.error("按保留期删除出错", metadata: ["error": "\(error)"])
        }
    }

    // MARK: notifications

    /// Starts sending the slot's digests on a thread of their own when they are due and no
    /// earlier send is still retrying.
    func notify(now: Date, environment: [String: String]) {
        guard let notifier else { return }
        // The flag first, then the check: a send finishing in between cannot be repeated.
        guard notifying.withLock({ busy in if busy { return false }; busy = true; return true }) else { return }
        guard let slot = try? notifier.dueSlot(now: now) else { notifying.withLock { $0 = false }; return }
        let log = logger
        let thread = Thread { [self] in
            defer { notifying.withLock { $0 = false } }
            do { try notifier.send(slot: slot, environment: environment) } catch { log.error("预警通知出错", metadata: ["error": "\(error)"]) }
        }
        thread.name = "hub.notify"
        thread.start()
    }

    /// Whether a digest is being sent now (tests wait for it).
    public var isNotifying: Bool { notifying.withLock { $0 } }

    // MARK: delivery calendar

    func checkDelivery(_ m: Mapping, period: Period, counts: RunCounts, now: Date) throws {
        let who = m.department.isEmpty ? m.title : m.department
        if counts.read == 0 {
            try store.raiseFeedAlert(source: m.source, period: period.description, kind: "empty", message: "\(who)：\(period) 的数据为空（0 行），可能是对方导出失败")
        }
        if let min = m.expect?.minRows, counts.read < min, counts.read > 0 {
            try store.raiseFeedAlert(source: m.source, period: period.description, kind: "below_min",
                                     message: "\(who)：\(period) 只送来 \(counts.read) 行，少于约定的至少 \(min) 行")
        }
        if let drop = m.expect?.maxDrop {
            let previous = try store.runs(source: m.source, limit: 50).first { $0.status == .succeeded && $0.period == period.adding(months: -1).description }
            if let p = previous, p.counts.read > 0, Double(counts.read) < Double(p.counts.read) * (1 - drop) {
                try store.raiseFeedAlert(source: m.source, period: period.description, kind: "shrunken",
                                         message: "\(who)：\(period) 送来 \(counts.read) 行，比上期 \(p.counts.read) 行减少超过 \(Int(drop * 100))%")
            }
        }
    }

    /// A data-quality alert for rows that contradict an earlier row of the same delivery.
    func raiseConflicts(_ m: Mapping, _ r: PullResult) throws {
        guard let message = r.conflictMessage(m) else { return }
        try store.raiseFeedAlert(source: m.source, period: r.period.description, kind: "conflict", message: message)
    }

    /// Whether a feed for `period` is past its due day (in the month after the period, for
    /// monthly feeds) plus the grace days; feeds without a due day never are.
    func isOverdue(_ m: Mapping, period: Period, now: Date) -> Bool {
        guard let dueDay = m.expect?.dueDay else { return false }
        let next = period.adding(months: 1)
        let day = min(dueDay, CivilDate.daysIn(year: next.year, month: next.month))
        guard let due = CivilDate(year: next.year, month: next.month, day: day) else { return false }
        let local = DateComponentsLite(Int(now.timeIntervalSince1970) + settings.utcOffset)
        guard let today = CivilDate(year: local.year, month: local.month, day: local.day) else { return false }
        return today > due.adding(days: settings.lateGraceDays)
    }

    /// A feed with a due day that has passed without a successful delivery is late.
    public func checkLateDeliveries(now: Date) throws {
        let current = mappings
        let local = DateComponentsLite(Int(now.timeIntervalSince1970) + settings.utcOffset)
        let period = Period(year: local.year, month: local.month)!.adding(months: -1)
        for m in current.values {
            guard let due = m.expect?.dueDay, local.day > due else { continue }
            let delivered = try store.runs(source: m.source, limit: 50).contains { $0.status == .succeeded && $0.period == period.description && $0.counts.read > 0 }
            if !delivered {
                try store.raiseFeedAlert(source: m.source, period: period.description, kind: "late",
                                         message: "\(m.department.isEmpty ? m.title : m.department)：\(period) 的数据应在 \(local.month) 月 \(due) 日前送达，至今未收到")
            }
        }
    }
}

/// A thread-safe flag, set once on shutdown.
public final class CancellationFlag: Sendable {
    private let value = Atomic(false)
    public init() {}
    public var isSet: Bool { value.load(ordering: .acquiring) }
    public func set() { value.store(true, ordering: .releasing) }
}
