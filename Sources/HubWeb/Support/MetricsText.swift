import Foundation
import Hub

/// The Prometheus text exposition of a `MetricsSnapshot`.
enum MetricsText {
    static func render(_ m: MetricsSnapshot) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ rows: [(labels: [(String, String)], value: Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for r in rows {
                let labels = r.labels.isEmpty ? "" : "{" + r.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
                out += "\(name)\(labels) \(r.value == r.value.rounded() ? String(Int64(r.value)) : String(r.value))\n"
            }
        }
        let succeeded = m.runs.filter { $0.status == .succeeded }
        family("hub_runs_total", "counter", "Pull runs by source and outcome.", m.runs.map { ([("source", $0.source), ("status", $0.status.rawValue)], Double($0.count)) })
        family("hub_rows_read_total", "counter", "Source rows read by successful runs.", succeeded.map { ([("source", $0.source)], Double($0.read)) })
        family("hub_rows_stored_total", "counter", "Records inserted, updated or confirmed by successful runs.", succeeded.map { ([("source", $0.source)], Double($0.stored)) })
        family("hub_rows_quarantined_total", "counter", "Rows sent to quarantine by successful runs.", succeeded.map { ([("source", $0.source)], Double($0.quarantined)) })
        family("hub_last_run_duration_seconds", "gauge", "Duration of each source's latest finished run.", m.lastRunSeconds.map { ([("source", $0.source)], $0.seconds) })
        family("hub_alerts_total", "counter", "Alerts raised, by rule.", m.alertsByRule.map { ([("rule", $0.rule)], Double($0.count)) })
        family("hub_cases_open", "gauge", "Open cases per township.", m.cases.map { ([("township", $0.code)], Double($0.open)) })
        family("hub_cases_overdue", "gauge", "Open cases past their deadline, per township.", m.cases.map { ([("township", $0.code)], Double($0.overdue)) })
        family("hub_cases_awaiting_dispatch", "gauge", "Open cases routed to no township, waiting in the county's dispatch queue.",
               [([], Double(m.cases.filter { $0.code.isEmpty }.reduce(0) { $0 + $1.open }))])
        family("hub_feed_alerts_total", "counter", "Late, empty, shrunken or failed deliveries.", m.feedAlerts.map { ([("source", $0.source), ("kind", $0.kind)], Double($0.count)) })
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
