/// Which record fields a rule's condition needs that no loaded mapping fills: such a rule can
/// never fire (a county whose roster has no update date cannot raise `roster_stale`), and the
/// operator should hear so rather than see silence.
public enum RuleCoverage {
    /// A field a rule's `when` reads, and the type it belongs to.
    public struct Gap: Sendable, Hashable {
        public var rule: String
        public var type: String
        public var field: String
        /// The field's title from the type declaration.
        public var title: String
        /// True when no loaded mapping produces the type at all.
        public var noMapping: Bool

        /// `household.updated_on（信息更新日期）`
        public var fieldText: String { "\(type).\(field)（\(title)）" }
    }

    /// The fields each rule's condition reads that no mapping fills, rule by rule.
    public static func gaps(rules: [Rule], mappings: [Mapping], types: TypeCatalog) -> [Gap] {
        var filled: [String: Set<String>] = [:]
        for m in mappings {
            for out in m.outputs {
                for (f, spec) in zip(out.type.fields, out.fields) where spec != nil { filled[out.type.name, default: []].insert(f.name) }
                if let up = out.unpivot {
                    filled[out.type.name, default: []].insert(up.into.name)
                    for h in up.header { filled[out.type.name, default: []].insert(h.spec.name) }
                }
            }
        }
        var out: [Gap] = []
        for rule in rules {
            var needed: [(RecordType, String)] = []
            for name in rule.when.names {
                let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                switch parts[0] {
                case "household": if let t = types["household"] { needed.append((t, parts[1])) }
                case "person", "members": if let t = types["person"] { needed.append((t, parts[1])) }
                default:
                    guard let use = rule.uses.first(where: { $0.name == parts[0] }) else { continue }
                    if let c = use.computed.first(where: { $0.name == parts[1] }) {
                        // A computed value needs the fields its expression reads.
                        for n in c.expression.names where use.type.field(n) != nil { needed.append((use.type, n)) }
                    } else {
                        needed.append((use.type, parts[1]))
                    }
                }
            }
            var seen = Set<String>()
            // A rule walks its trigger's records: with no mapping producing them it has nothing to walk.
            if let name = rule.trigger, let t = rule.uses.first(where: { $0.name == name })?.type, filled[t.name] == nil {
                let f = t.link ?? t.key.first ?? ""
                seen.insert("\(t.name).\(f)")
                out.append(Gap(rule: rule.name, type: t.name, field: f, title: t.field(f)?.title ?? f, noMapping: true))
            }
            for (t, f) in needed where t.field(f) != nil && !(filled[t.name]?.contains(f) ?? false) && seen.insert("\(t.name).\(f)").inserted {
                out.append(Gap(rule: rule.name, type: t.name, field: f, title: t.field(f)?.title ?? f, noMapping: filled[t.name] == nil))
            }
        }
        return out
    }

    /// One line per rule that cannot fire, in Chinese.
    public static func describe(_ gaps: [Gap]) -> [String] {
        Dictionary(grouping: gaps, by: \.rule).sorted { $0.key < $1.key }.map { rule, list in
            let noMapping = Set(list.filter(\.noMapping).map(\.type)).sorted()
            let fields = list.filter { !$0.noMapping }.map(\.fieldText)
            var why: [String] = []
            if !noMapping.isEmpty { why.append("没有映射产出 \(noMapping.joined(separator: "、")) 记录") }
            if !fields.isEmpty { why.append("没有映射填写 \(fields.joined(separator: "、"))") }
            return "规则 \(rule) 不会触发：\(why.joined(separator: "；"))"
        }
    }
}
