import Foundation
import Logging

/// Where digests go (hub.yaml `notifications.receivers`): a generic JSON webhook, a 企业微信 or
/// 钉钉 group robot, or e-mail. Secrets (robot URLs carry their key; SMTP passwords) are named
/// by environment variable, never written in the file.
public struct NotificationReceiver: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable { case webhook, wecom, dingtalk, email }
    public var name: String
    public var kind: Kind
    /// The townships (9-digit codes) and counties (6-digit codes: all their townships) whose
    /// counts this receiver gets; empty: everything (every township and the dispatch queue).
    public var townships: [String] = []
    /// The environment variable holding the webhook or robot URL (webhook, wecom, dingtalk).
    public var urlEnv: String?
    /// 钉钉 加签: the environment variable holding the robot's secret.
    public var secretEnv: String?
    /// E-mail: `smtp://host:25` or `smtps://host:465`, sender, recipients, and login from the environment.
    public var smtpURL: String?
    public var from: String?
    public var to: [String] = []
    public var userEnv: String?
    public var passwordEnv: String?
    public init(name: String, kind: Kind) { self.name = name; self.kind = kind }
}

/// hub.yaml `notifications:`.
public struct NotificationSettings: Sendable {
    /// When digests go out (a schedule as mappings write it: `daily at 08:00`).
    public var schedule: Schedule
    /// The address staff open the inbox at (links in messages).
    public var baseURL: String
    public var receivers: [NotificationReceiver]
    public init(schedule: Schedule, baseURL: String, receivers: [NotificationReceiver]) {
        self.schedule = schedule; self.baseURL = baseURL; self.receivers = receivers
    }
}

/// One message to one receiver: counts and a link, no names, no ID numbers, no findings.
public struct CaseDigest: Sendable, Hashable {
    public var receiver: NotificationReceiver
    public var since: String
    public var townships: [TownshipCounts]
    public var link: String

    public var newCases: Int { townships.reduce(0) { $0 + $1.new } }
    public var overdue: Int { townships.reduce(0) { $0 + $1.overdue } }
    public var open: Int { townships.reduce(0) { $0 + $1.open } }

    public var title: String { "防返贫监测预警：新增 \(newCases) 件，逾期 \(overdue) 件" }

    /// The digest as plain Chinese lines (e-mail, and the text of the robots' messages).
    public var lines: [String] {
        townships.map { "\($0.name)：新增 \($0.new) 件，逾期 \($0.overdue) 件，未销号 \($0.open) 件" }
    }
}

/// How a digest reaches a receiver (libcurl in `Connectors`; a recorder in tests).
public protocol NotificationTransport: Sendable {
    func send(_ digest: CaseDigest, environment: [String: String]) throws
}

/// Sends the county's digests on their schedule: per receiver, the counts of its townships
/// since the previous digest, only when something is new or overdue; each failure is retried
/// with backoff; each digest sent or given up is written to the audit log, which is also how a
/// restarted service knows the slot was done.
public final class Notifier: Sendable {
    public let settings: NotificationSettings
    let store: any HubStore
    let transport: any NotificationTransport
    let backoff: Backoff
    let logger: Logger
    /// Waits between attempts (tests pass one that does not sleep).
    let sleep: @Sendable (Double) -> Void
    public static let sentAction = "发送预警通知"
    public static let failedAction = "预警通知发送失败"

    public init(settings: NotificationSettings, store: any HubStore, transport: any NotificationTransport, backoff: Backoff = Backoff(base: 30, cap: 600, maxAttempts: 5, maxTotal: 1800),
                logger: Logger = Logger(label: "hub.notify"), sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }) {
        self.settings = settings; self.store = store; self.transport = transport; self.backoff = backoff; self.logger = logger; self.sleep = sleep
    }

    /// The slot due at `now`, if its digests have not gone out yet (the audit log says).
    public func dueSlot(now: Date) throws -> Date? {
        guard let slot = settings.schedule.previous(atOrBefore: now) else { return nil }
        var f = AuditFilter(limit: 1)
        f.action = Self.sentAction
        f.username = "（系统）"
        if let last = try store.auditEntries(f).first, last.target >= Timestamp.string(slot) { return nil }
        return slot
    }

    /// The digests for a slot: counts of cases opened since the previous slot.
    public func digests(slot: Date, today: CivilDate = .today) throws -> [CaseDigest] {
        let since = settings.schedule.previous(atOrBefore: slot.addingTimeInterval(-1)) ?? slot.addingTimeInterval(-86400)
        let counts = try store.caseCounts(openedSince: Timestamp.string(since), today: today)
        return settings.receivers.compactMap { r in
            let mine = r.townships.isEmpty ? counts : counts.filter { Area(r.townships).contains($0.code) }
            let link = settings.baseURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + (r.townships.isEmpty ? "/dashboard" : "/inbox")
            let d = CaseDigest(receiver: r, since: Timestamp.string(since), townships: mine.filter { $0.new > 0 || $0.overdue > 0 }, link: link)
            return d.townships.isEmpty ? nil : d
        }
    }

    /// Sends the slot's digests, each with retries; records the slot as done.
    public func send(slot: Date, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        for d in try digests(slot: slot) {
            var attempt = 1, waited = 0.0
            while true {
                do {
                    try transport.send(d, environment: environment)
                    logger.info("预警通知已发送", metadata: ["receiver": "\(d.receiver.name)", "new": "\(d.newCases)", "overdue": "\(d.overdue)"])
                    break
                } catch {
                    attempt += 1
                    guard let delay = backoff.delay(beforeAttempt: attempt, waitedSoFar: waited, random: Double.random(in: 0...1)) else {
                        logger.error("预警通知发送失败，已放弃", metadata: ["receiver": "\(d.receiver.name)", "error": "\(error)"])
                        try store.audit("（系统）", Self.failedAction, target: d.receiver.name, detail: "\(error)", address: "local")
                        break
                    }
                    logger.warning("预警通知发送失败，稍后重试", metadata: ["receiver": "\(d.receiver.name)", "error": "\(error)", "wait": "\(Int(delay))"])
                    waited += delay
                    sleep(delay)
                }
            }
        }
        try store.audit("（系统）", Self.sentAction, target: Timestamp.string(slot), detail: "\(settings.receivers.count) 个接收方", address: "local")
    }
}
