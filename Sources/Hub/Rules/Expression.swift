/// A small typed expression language for `keep_if` filters (and, later, alert rules).
///
/// ```
/// total_cost >= 50000 or (self_pay > 20000 and not empty(id_number))
/// level in ["一级", "二级"] and months_between(issued_on, period_end) <= 1
/// ```
/// Operators: `+ - * /`, `== != < <= > >=` (`=` is read as `==`), `and or not`, `in [...]`.
/// Money is compared in yuan. A comparison with an empty value is false; `empty(x)` tests for it.
/// Expressions are checked against the fields they use when the file loads, so a misspelt
/// field or a text compared with a number is reported with its column before any data flows.
public indirect enum Expression: Sendable {
    case literal(Value, offset: Int)
    case list([Expression], offset: Int)
    case field(String, offset: Int)
    case unary(UnaryOperator, Expression, offset: Int)
    case binary(Operator, Expression, Expression, offset: Int)
    case call(Function, [Expression], offset: Int)

    /// The binary operators; the parser makes nothing else, so evaluation never meets an unknown one.
    public enum Operator: String, Sendable, CaseIterable {
        case and, or, `in`
        case plus = "+", minus = "-", times = "*", divide = "/"
        case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    }

    public enum UnaryOperator: String, Sendable { case not, negate = "-" }

    /// The functions of the language: scalar functions and aggregates over a rule's record
    /// sets (`min` and `max` are both). An unknown name is refused when the expression is parsed.
    public enum Function: String, Sendable, CaseIterable {
        case empty, len, year, month, abs, min, max, date, contains, coalesce
        /// `if(condition, then, else)`.
        case ifThen = "if"
        case daysBetween = "days_between", monthsBetween = "months_between", startsWith = "starts_with"
        case sum, count, avg, latest, earliest, exists
        case trailingAvg = "trailing_avg"
    }

    /// Every name the expression reads (fields, variables, `set.field`).
    public var names: [String] {
        switch self {
        case .literal: return []
        case .list(let items, _): return items.flatMap(\.names)
        case .field(let n, _): return [n]
        case .unary(_, let x, _): return x.names
        case .binary(_, let a, let b, _): return a.names + b.names
        case .call(_, let args, _): return args.flatMap(\.names)
        }
    }

    public var offset: Int {
        switch self {
        case .literal(_, let o), .list(_, let o), .field(_, let o), .unary(_, _, let o), .binary(_, _, _, let o), .call(_, _, let o): return o
        }
    }
}

/// The static type of an expression.
public enum ExprType: String, Sendable, Equatable {
    case number, text, date, bool, list, null

    public static func of(_ f: FieldType) -> ExprType {
        switch f {
        case .integer, .decimal, .money: return .number
        case .date, .datetime: return .date
        case .bool: return .bool
        default: return .text
        }
    }
    var chinese: String {
        switch self {
        case .number: return "数值"
        case .text: return "文本"
        case .date: return "日期"
        case .bool: return "真假值"
        case .list: return "列表"
        case .null: return "空值"
        }
    }
}

/// An error in an expression, at a 0-based character offset into it.
public struct ExpressionError: Error, Sendable, Equatable {
    public var offset: Int
    public var message: String
}

// MARK: - Parsing

public enum ExpressionParser {
    enum Tok: Equatable { case num(String), str(String), ident(String), op(String), end }

    struct Lexer {
        let chars: [Character]
        var i = 0
        init(_ s: String) { chars = Array(s) }

        mutating func next() throws(ExpressionError) -> (Tok, Int) {
            while i < chars.count, chars[i].isWhitespace { i += 1 }
            let start = i
            guard i < chars.count else { return (.end, i) }
            let c = chars[i]
            if c.isASCII && c.isNumber {
                while i < chars.count, (chars[i].isASCII && chars[i].isNumber) || chars[i] == "." || chars[i] == "_" { i += 1 }
                return (.num(String(chars[start..<i].filter { $0 != "_" })), start)
            }
            if c == "\"" || c == "'" || c == "“" || c == "‘" {
                let close: Character = c == "“" ? "”" : c == "‘" ? "’" : c
                i += 1
                var s = ""
                while i < chars.count, chars[i] != close { s.append(chars[i]); i += 1 }
                guard i < chars.count else { throw ExpressionError(offset: start, message: "字符串没有结束引号") }
                i += 1
                return (.str(s), start)
            }
            if c.isLetter || c == "_" {
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" || chars[i] == "." { i += 1 }
                return (.ident(String(chars[start..<i])), start)
            }
            let two = i + 1 < chars.count ? String(chars[i...i + 1]) : ""
            if ["==", "!=", "<=", ">="].contains(two) { i += 2; return (.op(two), start) }
            if "+-*/<>()[],=".contains(c) { i += 1; return (.op(c == "=" ? "==" : String(c)), start) }
            if c == "≥" { i += 1; return (.op(">="), start) }
            if c == "≤" { i += 1; return (.op("<="), start) }
            throw ExpressionError(offset: start, message: "无法识别的字符 '\(c)'")
        }
    }

    struct Parser {
        var lexer: Lexer
        var tok: Tok = .end
        var pos = 0
        /// Nesting of brackets, calls and prefix operators, and tokens read: both are bounded so
        /// that a hostile or mistyped expression is refused instead of exhausting the stack
        /// (found by the fuzzer: 600 nested "[").
        var depth = 0
        var tokens = 0
        static let maxDepth = 64
        static let maxTokens = 2000

        init(_ s: String) throws(ExpressionError) {
            lexer = Lexer(s)
            (tok, pos) = try lexer.next()
        }
        mutating func advance() throws(ExpressionError) {
            (tok, pos) = try lexer.next()
            tokens += 1
            if tokens > Self.maxTokens { throw ExpressionError(offset: pos, message: "表达式过长（超过 \(Self.maxTokens) 个记号），请拆成几条规则或计算字段") }
        }
        mutating func nested() throws(ExpressionError) {
            depth += 1
            if depth > Self.maxDepth { throw ExpressionError(offset: pos, message: "表达式嵌套过深（超过 \(Self.maxDepth) 层）") }
        }
        mutating func expect(_ op: String) throws(ExpressionError) {
            guard tok == .op(op) else { throw ExpressionError(offset: pos, message: "此处应为 '\(op)'") }
            try advance()
        }
        func isWord(_ w: String) -> Bool { if case .ident(let s) = tok { return s.lowercased() == w }; return false }

        mutating func parseOr() throws(ExpressionError) -> Expression {
            try nested()
            defer { depth -= 1 }
            var lhs = try parseAnd()
            while isWord("or") || tok == .op("||") {
                let p = pos; try advance()
                lhs = .binary(.or, lhs, try parseAnd(), offset: p)
            }
            return lhs
        }
        mutating func parseAnd() throws(ExpressionError) -> Expression {
            var lhs = try parseNot()
            while isWord("and") {
                let p = pos; try advance()
                lhs = .binary(.and, lhs, try parseNot(), offset: p)
            }
            return lhs
        }
        mutating func parseNot() throws(ExpressionError) -> Expression {
            if isWord("not") {
                let p = pos; try advance()
                try nested()
                defer { depth -= 1 }
                return .unary(.not, try parseNot(), offset: p)
            }
            return try parseComparison()
        }
        mutating func parseComparison() throws(ExpressionError) -> Expression {
            let lhs = try parseAdditive()
            if case .op(let o) = tok, ["==", "!=", "<", "<=", ">", ">="].contains(o), let op = Expression.Operator(rawValue: o) {
                let p = pos; try advance()
                return .binary(op, lhs, try parseAdditive(), offset: p)
            }
            if isWord("in") {
                let p = pos; try advance()
                return .binary(.in, lhs, try parseAdditive(), offset: p)
            }
            return lhs
        }
        mutating func parseAdditive() throws(ExpressionError) -> Expression {
            var lhs = try parseMultiplicative()
            while case .op(let o) = tok, o == "+" || o == "-" {
                let p = pos; try advance()
                lhs = .binary(o == "+" ? .plus : .minus, lhs, try parseMultiplicative(), offset: p)
            }
            return lhs
        }
        mutating func parseMultiplicative() throws(ExpressionError) -> Expression {
            var lhs = try parseUnary()
            while case .op(let o) = tok, o == "*" || o == "/" {
                let p = pos; try advance()
                lhs = .binary(o == "*" ? .times : .divide, lhs, try parseUnary(), offset: p)
            }
            return lhs
        }
        mutating func parseUnary() throws(ExpressionError) -> Expression {
            if tok == .op("-") {
                let p = pos; try advance()
                try nested()
                defer { depth -= 1 }
                return .unary(.negate, try parseUnary(), offset: p)
            }
            return try parsePrimary()
        }
        mutating func parsePrimary() throws(ExpressionError) -> Expression {
            let p = pos
            switch tok {
            case .num(let s):
                try advance()
                guard let d = Double(s) else { throw ExpressionError(offset: p, message: "数字 \(s) 无效") }
                return .literal(.decimal(d), offset: p)
            case .str(let s):
                try advance()
                return .literal(.text(s), offset: p)
            case .ident(let name):
                try advance()
                switch name.lowercased() {
                case "true": return .literal(.bool(true), offset: p)
                case "false": return .literal(.bool(false), offset: p)
                case "null": return .literal(.null, offset: p)
                default: break
                }
                if tok == .op("(") {
                    try advance()
                    var args: [Expression] = []
                    if tok != .op(")") {
                        args.append(try parseOr())
                        while tok == .op(",") { try advance(); args.append(try parseOr()) }
                    }
                    try expect(")")
                    guard let f = Expression.Function(rawValue: name) else {
                        throw ExpressionError(offset: p, message: "未知的函数 \"\(name)\"\(Suggest.hint(name, Expression.Function.allCases.map(\.rawValue)))")
                    }
                    return .call(f, args, offset: p)
                }
                return .field(name, offset: p)
            case .op("("):
                try advance()
                let e = try parseOr()
                try expect(")")
                return e
            case .op("["):
                try advance()
                var items: [Expression] = []
                if tok != .op("]") {
                    items.append(try parseOr())
                    while tok == .op(",") { try advance(); items.append(try parseOr()) }
                }
                try expect("]")
                return .list(items, offset: p)
            case .end:
                throw ExpressionError(offset: p, message: "表达式不完整")
            case .op(let o):
                throw ExpressionError(offset: p, message: "此处不应出现 '\(o)'")
            }
        }
    }

    /// Parses a whole expression; trailing text is an error.
    public static func parse(_ text: String) throws(ExpressionError) -> Expression {
        var p = try Parser(text)
        let e = try p.parseOr()
        guard p.tok == .end else { throw ExpressionError(offset: p.pos, message: "表达式在此处多出内容") }
        return e
    }
}

// MARK: - Type checking

/// Names an expression may use: the fields of a record (and later, of a rule's subject).
public protocol ExpressionScope {
    func type(of name: String) -> ExprType?
    var names: [String] { get }
    /// The type of `set.field` (or of the set itself when `field` is nil) inside an aggregate
    /// such as `sum(claims.self_pay)`; nil when the scope has no record sets.
    func aggregateType(_ argument: String) -> ExprType?
    /// Names of the record sets, for suggestions.
    var setNames: [String] { get }
    /// Field names of one record set, for suggestions.
    func setFieldNames(_ set: String) -> [String]
}

extension ExpressionScope {
    public func aggregateType(_ argument: String) -> ExprType? { nil }
    public var setNames: [String] { [] }
    public func setFieldNames(_ set: String) -> [String] { [] }
}

/// A scope made of a record type's fields plus extra named values.
public struct FieldScope: ExpressionScope, Sendable {
    public var types: [String: ExprType]
    public init(_ types: [String: ExprType]) { self.types = types }
    public func type(of name: String) -> ExprType? { types[name] }
    public var names: [String] { types.keys.sorted() }
}

public enum ExpressionChecker {
    static let functions: [Expression.Function: (args: [ExprType?], result: ExprType)] = [
        .empty: ([nil], .bool),
        .len: ([.text], .number),
        .year: ([.date], .number),
        .month: ([.date], .number),
        .daysBetween: ([.date, .date], .number),
        .monthsBetween: ([.date, .date], .number),
        .abs: ([.number], .number),
        .min: ([.number, .number], .number),
        .max: ([.number, .number], .number),
        .startsWith: ([.text, .text], .bool),
        .contains: ([.text, .text], .bool),
        .date: ([.text], .date),
    ]

    /// Returns the type of `e` in `scope`, or throws the first mistake with its offset.
    /// Aggregates over a rule's record sets: `sum(claims.self_pay)`, `count(claims)`, `latest(power.kwh)`,
    /// `trailing_avg(power.kwh)` (the mean of all but the latest), `exists(certs)`.
    static let aggregates: [Expression.Function: ExprType] = [
        .sum: .number, .count: .number, .min: .number, .max: .number, .avg: .number, .latest: .number,
        .earliest: .number, .trailingAvg: .number, .exists: .bool,
    ]

    @discardableResult
    public static func check(_ e: Expression, in scope: some ExpressionScope) throws(ExpressionError) -> ExprType {
        switch e {
        case .literal(let v, _):
            switch v {
            case .null: return .null
            case .text: return .text
            case .bool: return .bool
            case .date, .datetime: return .date
            default: return .number
            }
        case .list(let items, let o):
            var t: ExprType? = nil
            for i in items {
                let it = try check(i, in: scope)
                if let t, t != it, it != .null { throw ExpressionError(offset: i.offset, message: "列表中混有\(t.chinese)和\(it.chinese)") }
                t = t ?? it
            }
            _ = o
            return .list
        case .field(let name, let o):
            guard let t = scope.type(of: name) else {
                throw ExpressionError(offset: o, message: "未知的字段 \"\(name)\"\(Suggest.hint(name, scope.names))")
            }
            return t
        case .unary(let op, let x, let o):
            let t = try check(x, in: scope)
            if op == .not {
                guard t == .bool || t == .null else { throw ExpressionError(offset: o, message: "not 只能用于真假值，这里是\(t.chinese)") }
                return .bool
            }
            guard t == .number || t == .null else { throw ExpressionError(offset: o, message: "负号只能用于数值，这里是\(t.chinese)") }
            return .number
        case .binary(let op, let a, let b, let o):
            let ta = try check(a, in: scope), tb = try check(b, in: scope)
            switch op {
            case .and, .or:
                for (t, x) in [(ta, a), (tb, b)] where t != .bool && t != .null {
                    throw ExpressionError(offset: x.offset, message: "\(op.rawValue) 两边应为条件（真假值），这里是\(t.chinese)")
                }
                return .bool
            case .plus, .minus, .times, .divide:
                if op == .minus && ta == .date && tb == .date { return .number }
                for (t, x) in [(ta, a), (tb, b)] where t != .number && t != .null {
                    throw ExpressionError(offset: x.offset, message: "运算 \(op.rawValue) 需要数值，这里是\(t.chinese)")
                }
                return .number
            case .in:
                guard tb == .list else { throw ExpressionError(offset: b.offset, message: "in 的右边应为列表，如 [\"一级\", \"二级\"]") }
                return .bool
            case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual:
                if ta != tb && ta != .null && tb != .null {
                    throw ExpressionError(offset: o, message: "不能比较\(ta.chinese)和\(tb.chinese)")
                }
                if (op != .equal && op != .notEqual) && (ta == .bool || ta == .list) {
                    throw ExpressionError(offset: o, message: "\(ta.chinese)不能比较大小")
                }
                return .bool
            }
        case .call(let name, let args, let o):
            if let result = aggregates[name], args.count == 1, case .field(let arg, let ao) = args[0], scope.aggregateType(arg) != nil || !scope.setNames.isEmpty {
                guard let t = scope.aggregateType(arg) else {
                    let set = String(arg.split(separator: ".").first ?? "")
                    if scope.setNames.contains(set) {
                        let field = String(arg.dropFirst(set.count + 1))
                        throw ExpressionError(offset: ao + set.count + 1, message: "记录集 \(set) 没有字段 \"\(field)\"\(Suggest.hint(field, scope.setFieldNames(set)))")
                    }
                    throw ExpressionError(offset: ao, message: "\(name.rawValue)() 中的 \"\(arg)\" 不是已声明的记录集或其字段\(Suggest.hint(set, scope.setNames))（记录集在 uses 中声明）")
                }
                if name == .count || name == .exists { return result }
                if name == .latest || name == .earliest { return t }
                guard t == .number || ((name == .min || name == .max) && t == .date) else {
                    throw ExpressionError(offset: ao, message: "\(name.rawValue)() 需要数值字段，\(arg) 是\(t.chinese)")
                }
                return name == .min || name == .max ? t : .number
            }
            if name == .ifThen {
                guard args.count == 3 else { throw ExpressionError(offset: o, message: "函数 if 需要 3 个参数（条件, 成立时, 不成立时），给了 \(args.count) 个") }
                let tc = try check(args[0], in: scope)
                guard tc == .bool || tc == .null else { throw ExpressionError(offset: args[0].offset, message: "if 的第一个参数应为条件（真假值），这里是\(tc.chinese)") }
                let ta = try check(args[1], in: scope), tb = try check(args[2], in: scope)
                if ta != tb && ta != .null && tb != .null { throw ExpressionError(offset: args[2].offset, message: "if 的两个结果应同类，这里是\(ta.chinese)和\(tb.chinese)") }
                return ta == .null ? tb : ta
            }
            if name == .coalesce {
                // The first value that is not empty: `coalesce(ended_at, period_end)`.
                guard args.count == 2 else { throw ExpressionError(offset: o, message: "函数 coalesce 需要 2 个参数，给了 \(args.count) 个") }
                let ta = try check(args[0], in: scope), tb = try check(args[1], in: scope)
                if ta != tb && ta != .null && tb != .null { throw ExpressionError(offset: args[1].offset, message: "coalesce 的两个参数应同类，这里是\(ta.chinese)和\(tb.chinese)") }
                return ta == .null ? tb : ta
            }
            guard let sig = functions[name] else {
                throw ExpressionError(offset: o, message: "\(name.rawValue)() 只能用于规则的记录集，如 \(name.rawValue)(claims.self_pay)")
            }
            guard args.count == sig.args.count else {
                throw ExpressionError(offset: o, message: "函数 \(name.rawValue) 需要 \(sig.args.count) 个参数，给了 \(args.count) 个")
            }
            for (arg, want) in zip(args, sig.args) {
                let t = try check(arg, in: scope)
                if let want, t != want, t != .null {
                    throw ExpressionError(offset: arg.offset, message: "函数 \(name.rawValue) 的参数应为\(want.chinese)，这里是\(t.chinese)")
                }
            }
            return sig.result
        }
    }
}

// MARK: - Evaluation

public enum ExpressionEvaluator {
    /// Evaluates `e`; `lookup` returns a named value. Type errors cannot occur after `check`.
    public static func evaluate(_ e: Expression, _ lookup: (String) -> Value) -> Value {
        evaluate(e, lookup, aggregate: nil)
    }

    /// Evaluates with record sets: `aggregate(function, "set.field")` computes `sum(set.field)` and friends.
    public static func evaluate(_ e: Expression, _ lookup: (String) -> Value, aggregate: ((String, String) -> Value?)?) -> Value {
        func ev(_ x: Expression) -> Value { evaluate(x, lookup, aggregate: aggregate) }
        switch e {
        case .literal(let v, _): return v
        case .list: return .null  // only meaningful on the right of `in`
        case .field(let n, _): return lookup(n)
        case .unary(let op, let x, _):
            let v = ev(x)
            switch op {
            case .not: return truth(v).map { .bool(!$0) } ?? .bool(true)
            case .negate: return v.number.map { .decimal(-$0) } ?? .null
            }
        case .binary(let op, let a, let b, _):
            switch op {
            case .and: return .bool(truth(ev(a)) == true && truth(ev(b)) == true)
            case .or: return .bool(truth(ev(a)) == true || truth(ev(b)) == true)
            case .in:
                let v = ev(a)
                guard case .list(let items, _) = b, !v.isNull else { return .bool(false) }
                return .bool(items.contains { compare(v, ev($0)) == 0 })
            case .plus, .minus, .times, .divide:
                let x = ev(a), y = ev(b)
                if op == .minus, let dx = dayNumber(x), let dy = dayNumber(y) { return .decimal(Double(dx - dy)) }
                guard let p = x.number, let q = y.number else { return .null }
                switch op {
                case .plus: return .decimal(p + q)
                case .minus: return .decimal(p - q)
                case .times: return .decimal(p * q)
                default: return q == 0 ? .null : .decimal(p / q)
                }
            case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual:
                let x = ev(a), y = ev(b)
                guard let c = compare(x, y) else { return .bool(op == .notEqual && !(x.isNull && y.isNull)) }
                switch op {
                case .equal: return .bool(c == 0)
                case .notEqual: return .bool(c != 0)
                case .less: return .bool(c < 0)
                case .lessOrEqual: return .bool(c <= 0)
                case .greater: return .bool(c > 0)
                default: return .bool(c >= 0)
                }
            }
        case .call(let name, let args, _):
            if let aggregate, args.count == 1, ExpressionChecker.aggregates[name] != nil, case .field(let arg, _) = args[0],
               let result = aggregate(name.rawValue, arg) {
                return result
            }
            let v = args.map { ev($0) }
            // Arity was checked when the expression loaded; an unchecked call with too few arguments is empty.
            func arg(_ i: Int) -> Value { i < v.count ? v[i] : .null }
            switch name {
            case .empty:
                if case .text(let s) = arg(0) { return .bool(s.isEmpty) }
                return .bool(arg(0).isNull)
            case .len: if case .text(let s) = arg(0) { return .decimal(Double(s.count)) }; return .null
            case .year: return date(arg(0)).map { .decimal(Double($0.year)) } ?? .null
            case .month: return date(arg(0)).map { .decimal(Double($0.month)) } ?? .null
            case .daysBetween:
                guard let a = dayNumber(arg(0)), let b = dayNumber(arg(1)) else { return .null }
                return .decimal(Double(b - a))
            case .monthsBetween:
                guard let a = date(arg(0)), let b = date(arg(1)) else { return .null }
                var m = (b.year - a.year) * 12 + (b.month - a.month)
                if m > 0 && b.day < a.day { m -= 1 } else if m < 0 && b.day > a.day { m += 1 }
                return .decimal(Double(m))
            case .abs: return arg(0).number.map { .decimal(Swift.abs($0)) } ?? .null
            case .min: guard let a = arg(0).number, let b = arg(1).number else { return .null }; return .decimal(Swift.min(a, b))
            case .max: guard let a = arg(0).number, let b = arg(1).number else { return .null }; return .decimal(Swift.max(a, b))
            case .startsWith:
                guard case .text(let s) = arg(0), case .text(let p) = arg(1) else { return .bool(false) }
                return .bool(s.hasPrefix(p))
            case .contains:
                guard case .text(let s) = arg(0), case .text(let p) = arg(1) else { return .bool(false) }
                return .bool(s.contains(p))
            case .coalesce:
                return arg(0).isNull ? arg(1) : arg(0)
            case .ifThen:
                return truth(arg(0)) == true ? arg(1) : arg(2)
            case .date:
                guard case .text(let s) = arg(0) else { return .null }
                for f in DateFormat.defaults { if let (d, _) = f.parse(s) { return .date(d) } }
                return .null
            case .sum, .count, .avg, .latest, .earliest, .exists, .trailingAvg:
                // An aggregate outside a rule (no record sets): nothing to aggregate.
                return .null
            }
        }
    }

    /// True/false of a condition; nil for an empty value.
    public static func truth(_ v: Value) -> Bool? {
        switch v {
        case .bool(let b): return b
        case .null: return nil
        default: return true
        }
    }

    static func date(_ v: Value) -> CivilDate? {
        switch v {
        case .date(let d), .datetime(let d, _): return d
        default: return nil
        }
    }
    static func dayNumber(_ v: Value) -> Int? { date(v)?.daysSinceEpoch }

    /// Orders two values of the same kind; nil when either is empty or they cannot be compared.
    static func compare(_ x: Value, _ y: Value) -> Int? {
        if let p = x.number, let q = y.number { return p < q ? -1 : p > q ? 1 : 0 }
        switch (x, y) {
        case (.text(let a), .text(let b)): return a < b ? -1 : a > b ? 1 : 0
        case (.bool(let a), .bool(let b)): return a == b ? 0 : (a ? 1 : -1)
        default:
            if case .datetime(let d1, let s1) = x, case .datetime(let d2, let s2) = y {
                let a = d1.daysSinceEpoch * 86400 + s1, b = d2.daysSinceEpoch * 86400 + s2
                return a < b ? -1 : a > b ? 1 : 0
            }
            if let a = dayNumber(x), let b = dayNumber(y) { return a < b ? -1 : a > b ? 1 : 0 }
            return nil
        }
    }
}
