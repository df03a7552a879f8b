internal import Yams

/// A YAML value with the file and position it came from, so every mistake can be reported as
/// `FILE:LINE:COLUMN`. Connector plugins read their `fetch:` options through it.
public struct ConfigNode: Sendable {
    public enum Kind: Sendable {
        case scalar(String)
        case mapping([(key: String, keyLocation: SourceLocation, value: ConfigNode)])
        case sequence([ConfigNode])
        case null
    }
    public let kind: Kind
    public let location: SourceLocation
    /// Whether a scalar was written in quotes (its text then starts one column after `location`).
    public private(set) var quoted = false

    init(_ node: Node, file: String) {
        let mark = node.mark
        if case .scalar(let s) = node { quoted = s.style == .singleQuoted || s.style == .doubleQuoted }
        location = SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
        switch node {
        case .scalar(let s):
            if s.style == .plain && (s.string == "~" || s.string == "null" || s.string.isEmpty) { kind = .null }
            else { kind = .scalar(s.string) }
        case .mapping(let m):
            var entries: [(key: String, keyLocation: SourceLocation, value: ConfigNode)] = []
            var merged: [(key: String, keyLocation: SourceLocation, value: ConfigNode)] = []
            for pair in m {
                let km = pair.key.mark
                let key = pair.key.string ?? ""
                let value = ConfigNode(pair.value, file: file)
                if key == "<<" {
                    // A YAML merge key: `<<: *defaults` (or a list of them) brings in the anchored
                    // mapping's entries; the keys written here win.
                    for source in value.items ?? [value] { merged += source.entries ?? [] }
                    continue
                }
                entries.append((key, SourceLocation(file: file, line: km?.line ?? 1, column: km?.column ?? 1), value))
            }
            let own = Set(entries.map(\.key))
            var seen = own
            for e in merged where seen.insert(e.key).inserted { entries.append(e) }
            kind = .mapping(entries)
        case .sequence(let s):
            kind = .sequence(s.map { ConfigNode($0, file: file) })
        case .alias:
            kind = .null
        }
    }

    init(kind: Kind, location: SourceLocation) {
        self.kind = kind; self.location = location
    }

    /// Parses a YAML document; a syntax error becomes a diagnostic with its position.
    public static func parse(_ text: String, file: String) throws(DiagnosticList) -> ConfigNode {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                return ConfigNode(kind: .null, location: SourceLocation(file: file, line: 1, column: 1))
            }
            return ConfigNode(node, file: file)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                throw DiagnosticList([Diagnostic(SourceLocation(file: file, line: mark.line, column: mark.column), "YAML 语法错误：\(problem)")])
            case .duplicatedKeysInMapping(let dups, let ctx):
                throw DiagnosticList([Diagnostic(SourceLocation(file: file, line: ctx.mark.line, column: ctx.mark.column), "重复的键：\(dups.joined(separator: ", "))")])
            default:
                throw DiagnosticList([Diagnostic(SourceLocation(file: file, line: 1, column: 1), "YAML 错误：\(error)")])
            }
        } catch {
            throw DiagnosticList([Diagnostic(SourceLocation(file: file, line: 1, column: 1), "YAML 错误：\(error)")])
        }
    }

    public var string: String? { if case .scalar(let s) = kind { return s }; return nil }
    public var isNull: Bool { if case .null = kind { return true }; return false }
    public var entries: [(key: String, keyLocation: SourceLocation, value: ConfigNode)]? {
        if case .mapping(let m) = kind { return m }; return nil
    }
    public var items: [ConfigNode]? { if case .sequence(let s) = kind { return s }; return nil }

    public subscript(key: String) -> ConfigNode? {
        entries?.first(where: { $0.key == key })?.value
    }

    /// A short description of what this node is, for "expected X, found Y" messages.
    public var kindName: String {
        switch kind {
        case .scalar(let s): return "\"\(s)\""
        case .mapping: return "一个映射 (key: value)"
        case .sequence: return "一个列表"
        case .null: return "空值"
        }
    }
}

/// Reads a `ConfigNode` tree into typed values, collecting every mistake with its position.
public final class ConfigReader {
    public private(set) var diagnostics: [Diagnostic] = []

    public init() {}

    public func error(_ at: SourceLocation, _ message: String) {
        diagnostics.append(Diagnostic(at, message))
    }

    /// The entries of a mapping node; reports keys outside `allowed` with a suggestion.
    public func mapping(_ node: ConfigNode, what: String, allowed: [String]? = nil) -> [String: (ConfigNode, SourceLocation)] {
        guard let entries = node.entries else {
            if !node.isNull { error(node.location, "\(what) 应为映射 (key: value)，实为 \(node.kindName)") }
            return [:]
        }
        var result: [String: (ConfigNode, SourceLocation)] = [:]
        for e in entries {
            if let allowed, !allowed.contains(e.key) {
                error(e.keyLocation, "\(what) 中有未知的键 \"\(e.key)\"\(Suggest.hint(e.key, allowed))（可用：\(allowed.joined(separator: ", "))）")
                continue
            }
            result[e.key] = (e.value, e.keyLocation)
        }
        return result
    }

    public func string(_ node: ConfigNode?, what: String) -> String? {
        guard let node else { return nil }
        if let s = node.string { return s }
        if !node.isNull { error(node.location, "\(what) 应为文本，实为 \(node.kindName)") }
        return nil
    }

    public func requiredString(_ m: [String: (ConfigNode, SourceLocation)], _ key: String, in node: ConfigNode, what: String) -> String? {
        guard let (v, _) = m[key] else {
            error(node.location, "\(what) 缺少必需的键 \"\(key)\"")
            return nil
        }
        let s = string(v, what: "\(what).\(key)")
        if s == nil || s!.isEmpty { if v.isNull { error(v.location, "\(what).\(key) 不能为空") } ; return nil }
        return s
    }

    public func int(_ node: ConfigNode?, what: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard let node, let s = string(node, what: what) else { return nil }
        guard let v = Int(s) else { error(node.location, "\(what) 应为整数，实为 \"\(s)\""); return nil }
        if let range, !range.contains(v) { error(node.location, "\(what) 应在 \(range.lowerBound)…\(range.upperBound) 之间，实为 \(v)"); return nil }
        return v
    }

    public func bool(_ node: ConfigNode?, what: String) -> Bool? {
        guard let node, let s = string(node, what: what) else { return nil }
        switch s.lowercased() {
        case "true", "yes", "on", "是": return true
        case "false", "no", "off", "否": return false
        default: error(node.location, "\(what) 应为 true 或 false，实为 \"\(s)\""); return nil
        }
    }

    /// A scalar or a list of scalars, as a list.
    public func strings(_ node: ConfigNode?, what: String) -> [String]? {
        guard let node else { return nil }
        if let s = node.string { return [s] }
        if let items = node.items {
            return items.compactMap { string($0, what: what) }
        }
        if !node.isNull { error(node.location, "\(what) 应为文本或文本列表，实为 \(node.kindName)") }
        return nil
    }

    public func oneOf(_ node: ConfigNode?, what: String, _ choices: [String]) -> String? {
        guard let node, let s = string(node, what: what) else { return nil }
        guard choices.contains(s) else {
            error(node.location, "\(what) 的值 \"\(s)\" 无效\(Suggest.hint(s, choices))（可用：\(choices.joined(separator: ", "))）")
            return nil
        }
        return s
    }
}
