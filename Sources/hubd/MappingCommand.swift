import ArgumentParser
import Foundation
import Hub
import Connectors

struct MappingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mapping",
        abstract: "检查和试用映射文件",
        subcommands: [Check.self, Try.self, Init.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "检查映射文件：每个错误按 文件:行:列: 说明 输出；有错时退出码非零",
            discussion: "给出 --sample 时还会读取样本文件的表头，核对每个来源列是否存在。")
        @Argument(help: "映射文件") var files: [String]
        @Option(help: "记录类型目录；默认用映射文件所在目录下的 types/，没有时用 Mappings/types") var types: String?
        @Option(help: "样本数据文件：核对来源列") var sample: String?

        func run() throws {
            let catalog: TypeCatalog
            let typesDir = typesDirectory(for: files.first ?? ".", types)
            do { catalog = try TypeCatalog.load(directory: typesDir) } catch {
                printErr("（记录类型目录：\(typesDir.path)）")
                throw report(error)
            }
            if catalog.names.isEmpty { printErr("在 \(typesDir.path) 中没有找到记录类型（*.yaml）；用 --types 指定目录") }
            let loader = MappingLoader(types: catalog, connectors: BuiltinConnectors.registry)
            var failed = false
            for f in files {
                do {
                    let m = try loader.load(file: URL(fileURLWithPath: f))
                    if let sample {
                        let problems = try SampleCheck.columns(of: m, sample: sample)
                        if !problems.isEmpty {
                            failed = true
                            for p in problems { printErr(p) }
                            continue
                        }
                    }
                    print("\(f)：正确（来源 \(m.source)，连接器 \(m.connector)，格式 \(m.format.name)，产出 \(m.outputs.map(\.type.name).joined(separator: "、"))）")
                } catch let e as DiagnosticList {
                    failed = true
                    _ = report(e)
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "根据样本文件起草映射：识别格式、编码、分隔符、标题行和合计行，按列名、类型文件里的同义词和内容（身份证号、日期、金额、代码）把列对应到字段，写出带注释的 YAML，再用样本试一遍")
        @Argument(help: "样本数据文件（CSV、XLSX、JSON、NDJSON、XML）；用 --url 时不写") var sampleFile: String?
        @Option(help: "记录类型，如 medical_claim") var type: String
        @Option(help: "写到这个文件（默认打印出来）") var out: String?
        @Option(help: "来源名称（默认取输出文件名）") var source: String?
        @Option(help: "记录类型目录（默认 Mappings/types）") var types: String = "Mappings/types"
        @Option(help: "不用样本文件，从部门接口取第一页作样本（草稿里写 connector: http 和这个地址）") var url: String?
        @Option(help: "--url 的认证：保存 Bearer 令牌的环境变量名") var bearerEnv: String?
        @Option(help: "--url 的认证：Basic 用户名") var basicUser: String?
        @Option(help: "--url 的认证：保存 Basic 密码的环境变量名") var basicPasswordEnv: String?
        @Option(help: "--url 的认证：保存 API key 的环境变量名（配 --api-key-header 或 --api-key-param）") var apiKeyEnv: String?
        @Option(help: "API key 放在哪个请求头") var apiKeyHeader: String?
        @Option(help: "API key 放在哪个查询参数") var apiKeyParam: String?
        @Option(help: "部门私有 CA 的证书文件（PEM）") var caFile: String?

        func validate() throws {
            if (sampleFile == nil) == (url == nil) { throw ValidationError("请给出样本文件，或用 --url 从接口取样本（二选一）") }
            if let url, let q = URLComponents(string: url)?.queryItems,
               let secret = q.first(where: { ["key", "token", "secret", "password", "pwd", "apikey", "api_key", "access_token", "appsecret"].contains($0.name.lowercased()) }) {
                throw ValidationError("地址里带着 \(secret.name)：密钥不要写在地址里（会进映射文件和日志），请用 --api-key-env 变量 --api-key-param \(secret.name)")
            }
        }

        /// The `fetch:` block of the draft, from the --url options (secrets by variable name only).
        var fetchLines: [String]? {
            guard let url else { return nil }
            var lines = ["connector: http", "fetch:", "  url: \(MappingDraft.quoted(url))           # 按月取数时把年月换成 {period}（2026-10）或 {period_compact}（202610）"]
            var auth: [String] = []
            if let bearerEnv { auth.append("bearer_env: \(bearerEnv)") }
            if let basicUser { auth.append("basic_user: \(MappingDraft.quoted(basicUser))") }
            if let basicPasswordEnv { auth.append("basic_password_env: \(basicPasswordEnv)") }
            if let apiKeyEnv { auth.append("api_key_env: \(apiKeyEnv)") }
            if let apiKeyHeader { auth.append("header: \(MappingDraft.quoted(apiKeyHeader))") }
            if let apiKeyParam { auth.append("param: \(MappingDraft.quoted(apiKeyParam))") }
            if !auth.isEmpty { lines.append("  auth: { \(auth.joined(separator: ", ")) }") }
            if let caFile { lines.append("  ca_file: \(MappingDraft.quoted(caFile))") }
            lines.append("  # 接口分页时加 page: { style: page|offset|cursor, param: …, size: … }，见 README“连接器”")
            return lines
        }

        /// The first document the URL answers, through the real HTTP connector (auth, TLS and
        /// limits as a pull has them), saved to a private temporary file.
        func fetchSample() throws -> String {
            guard let lines = fetchLines else { return sampleFile! }
            let text = lines.dropFirst(2).map { String($0.dropFirst(2)) }.joined(separator: "\n")
            let options: ConfigNode
            do { options = try ConfigNode.parse(text, file: "--url") } catch { throw report(error) }
            let r = ConfigReader()
            guard let connector = BuiltinConnectors.registry.kinds["http"]?.make(options, FileManager.default.currentDirectoryPath, r) else {
                throw report(DiagnosticList(r.diagnostics))
            }
            final class FirstDocument: DocumentSink {
                var bytes: [UInt8] = []
                var documents = 0
                struct Enough: Error {}
                func begin(document name: String) throws { documents += 1; if documents > 1 { throw Enough() } }
                func write(_ b: UnsafeRawBufferPointer) throws {
                    bytes += b
                    if bytes.count > 64 << 20 { throw ValidationError("接口的第一页超过 64 MB：请在地址里限定条数（如 page_size=200）或下载一个小样本用文件起草") }
                }
                func end() throws -> DocumentInfo { DocumentInfo(rows: 0) }
            }
            let sink = FirstDocument()
            let now = CivilDate.today
            do {
                try connector.fetch(FetchContext(source: source ?? "sample", period: Period(year: now.year, month: now.month)!), into: sink)
            } catch is FirstDocument.Enough {
            } catch let e as FetchError { throw ValidationError("从 \(url!) 取样本失败：\(e.message)") }
            let last = URL(string: url!)?.lastPathComponent ?? ""
            let name = last.isEmpty || last == "/" ? "sample" : last
            let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("hub-init-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            let path = dir.appendingPathComponent(name).path
            try Data(sink.bytes).write(to: URL(fileURLWithPath: path))
            return path
        }

        func run() throws {
            let catalog: TypeCatalog
            do { catalog = try TypeCatalog.load(directory: URL(fileURLWithPath: types)) } catch { throw report(error) }
            guard let t = catalog[type] else {
                throw ValidationError("没有记录类型 \(type)（\(types) 里有：\(catalog.names.sorted().joined(separator: "、"))）")
            }
            let sample = try fetchSample()
            defer { if url != nil { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: sample).deletingLastPathComponent().path) } }
            guard let bytes = FileManager.default.contents(atPath: sample) else { throw ValidationError("无法读取样本文件 \(sample)") }
            let draft: MappingDraft
            do { draft = try MappingDraft.draft(bytes: Array(bytes), fileName: sample, type: t) }
            catch let e as MappingDraft.Failure { throw ValidationError("\(sample)：\(e.description)") }
            catch let e as DecodeError { throw ValidationError("\(sample)：无法读取（\(e.message)）") }
            let name = source ?? out.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent } ?? t.name.replacingOccurrences(of: "_", with: "-")
            let samplePath = url ?? out.map { o in Self.relative(sample, to: URL(fileURLWithPath: o).deletingLastPathComponent().path) } ?? sample
            let yaml = draft.yaml(source: name, samplePath: samplePath, fetch: fetchLines)
            if let out {
                try yaml.write(toFile: out, atomically: true, encoding: .utf8)
                printErr("已写出 \(out)：\(draft.placements.count) 个字段已对应，\(draft.missing.count) 个没找到（见文件中的 TODO）")
            } else {
                print(yaml, terminator: "")
            }
            // The draft tried on the sample at once.
            let mapping: Mapping
            do { mapping = try MappingLoader(types: catalog, connectors: BuiltinConnectors.registry).load(text: yaml, file: out ?? name + ".yaml", directory: FileManager.default.currentDirectoryPath) }
            catch { printErr("草稿还不能加载（补上 TODO 后再试）：\(error)"); return }
            let result = try SampleCheck.run(mapping, sample: sample, period: Period(year: CivilDate.today.year, month: CivilDate.today.month)!)
            printErr("试映射：读取 \(result.read) 行，得到记录 \(result.records.count) 条，拒收 \(result.rejected.count) 行"
                     + (result.rejected.first.map { "（如第 \($0.0) 行：\($0.1.map(\.text).joined(separator: "；"))）" } ?? ""))
        }

        static func relative(_ path: String, to dir: String) -> String {
            let p = URL(fileURLWithPath: path).standardizedFileURL.path, d = URL(fileURLWithPath: dir).standardizedFileURL.path
            return p.hasPrefix(d + "/") ? String(p.dropFirst(d.count + 1)) : p
        }
    }

    struct Try: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "用样本文件试用映射：显示映射后的记录和被拒的行及原因，不写入任何数据")
        @Argument(help: "映射文件") var file: String
        @Option(help: "样本数据文件") var sample: String?
        @Flag(help: "不用样本文件，而是通过映射自己的连接器实时拉取（认证、分页照常；密钥从环境变量读取），只读前 --rows 行，不写入任何数据") var live = false
        @Option(help: "--live 时最多读取多少行") var rows: Int = 200
        @Option(help: "记录类型目录；默认用映射文件所在目录下的 types/，没有时用 Mappings/types") var types: String?
        @Option(help: "期间（keep_if 中的 period_start/period_end），默认本月") var period: String?
        @Option(help: "最多显示多少条记录和多少行拒收（各自计数，最后给出总数）") var limit: Int = 20
        @Flag(help: "以 NDJSON 输出（每行一个 JSON）") var json = false

        func validate() throws {
            if sample == nil && !live { throw ValidationError("请用 --sample 给出样本文件，或用 --live 通过连接器实时拉取") }
            if sample != nil && live { throw ValidationError("--sample 与 --live 二选一") }
            if rows < 1 { throw ValidationError("--rows 至少为 1") }
        }

        func run() throws {
            let catalog: TypeCatalog
            let typesDir = typesDirectory(for: file, types)
            do { catalog = try TypeCatalog.load(directory: typesDir) } catch {
                printErr("（记录类型目录：\(typesDir.path)）")
                throw report(error)
            }
            if catalog.names.isEmpty { printErr("在 \(typesDir.path) 中没有找到记录类型（*.yaml）；用 --types 指定目录") }
            let mapping: Mapping
            do { mapping = try MappingLoader(types: catalog, connectors: BuiltinConnectors.registry).load(file: URL(fileURLWithPath: file)) }
            catch { throw report(error) }
            let p = try period.map(parsePeriod) ?? Period(year: Calendar.current.component(.year, from: Date()), month: Calendar.current.component(.month, from: Date()))!
            let result: SampleCheck.Result
            do {
                if let sample { result = try SampleCheck.run(mapping, sample: sample, period: p) }
                else { result = try SampleCheck.live(mapping, period: p, rows: rows) }
            }
            catch let e as RowMapper.MissingColumns {
                if let sample { for line in try SampleCheck.columns(of: mapping, sample: sample) { printErr(line) } }
                else { printErr(e.description) }
                throw ExitCode(1)
            }
            let enc = JSONSerialization.self
            var shown = 0
            for r in result.records where shown < limit {
                shown += 1
                var obj: [String: Any] = ["_row": r.row, "_type": r.type.name]
                for (f, v) in zip(r.type.fields, r.values) where !v.isNull { obj[f.name] = v.description }
                if json {
                    print(String(decoding: try enc.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
                } else {
                    let fields = zip(r.type.fields, r.values).filter { !$0.1.isNull }.map { "\($0.0.name)=\(display($0.1, $0.0.type))" }
                    print("第 \(r.row) 行 → \(r.type.name)：\(fields.joined(separator: "  "))")
                }
            }
            for (row, reasons) in result.rejected.prefix(limit) {
                if json {
                    let obj: [String: Any] = ["_row": row, "_rejected": reasons.map(\.text)]
                    print(String(decoding: try enc.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
                } else {
                    print("第 \(row) 行 ✗ 拒收：\(reasons.map(\.text).joined(separator: "；"))")
                }
            }
            var summary = "共 \(result.read) 行：映射 \(result.records.count) 条记录，拒收 \(result.rejected.count) 行，跳过 \(result.skipped) 行（keep_if）。未写入任何数据。"
            if result.records.count > limit || result.rejected.count > limit {
                summary += "（只显示了前 \(min(limit, result.records.count)) 条记录和前 \(min(limit, result.rejected.count)) 行拒收；--limit 可调）"
            }
            if live { summary = "实时拉取（最多 \(rows) 行）" + summary }
            if json { printErr(summary) } else { print(summary) }
        }

        func display(_ v: Value, _ t: FieldType) -> String {
            t == .residentID ? ResidentID.mask(v.description) : v.description
        }
    }
}

/// The record types for a mapping file: `--types`, else `types/` beside the mapping or in the
/// nearest folder above it, else `Mappings/types`.
func typesDirectory(for mappingFile: String, _ types: String?) -> URL {
    if let types { return URL(fileURLWithPath: types) }
    let found = MappingsFolder.types(of: URL(fileURLWithPath: mappingFile).deletingLastPathComponent())
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: found.path, isDirectory: &isDir), isDir.boolValue { return found }
    return URL(fileURLWithPath: "Mappings/types")
}

/// Runs a mapping over a local sample file without a store: for `mapping try` and `check --sample`.
enum SampleCheck {
    struct Result {
        var read = 0
        var skipped = 0
        var records: [MappedRecord] = []
        var rejected: [(Int, [QuarantineReason])] = []
    }

    static func run(_ mapping: Mapping, sample: String, period: Period) throws -> Result {
        guard let data = FileManager.default.contents(atPath: sample) else { throw ValidationError("无法读取样本文件 \(sample)") }
        var decoder = mapping.format.makeDecoder()
        let mapper = RowMapper(mapping: mapping, period: period)
        var result = Result()
        let doc = (sample as NSString).lastPathComponent
        func handle(_ row: RawRow) throws {
            result.read += 1
            switch try mapper.map(row, document: doc) {
            case .records(let rs): result.records += rs
            case .skipped: result.skipped += 1
            case .rejected(let why): result.rejected.append((row.number, why))
            case .partial(let rs, let why): result.records += rs; result.rejected.append((row.number, why))
            }
        }
        do {
            try data.withUnsafeBytes { try decoder.feed($0, handle) }
            _ = try decoder.finish(handle)
        } catch let e as DecodeError {
            throw ValidationError("\(sample)：\(e.message)")
        }
        return result
    }

    /// Fetches through the mapping's own connector (its auth and paging, secrets from the
    /// environment) and maps the first `rows` rows; stores nothing.
    static func live(_ mapping: Mapping, period: Period, rows: Int) throws -> Result {
        final class Sink: DocumentSink {
            struct Enough: Error {}
            let mapping: Mapping
            let mapper: RowMapper
            let limit: Int
            var decoder: (any RowDecoder)?
            var document = ""
            var result = Result()
            init(_ mapping: Mapping, _ period: Period, _ limit: Int) {
                self.mapping = mapping; mapper = RowMapper(mapping: mapping, period: period); self.limit = limit
            }
            func handle(_ row: RawRow) throws {
                if result.read >= limit { throw Enough() }
                result.read += 1
                switch try mapper.map(row, document: document) {
                case .records(let rs): result.records += rs
                case .skipped: result.skipped += 1
                case .rejected(let why): result.rejected.append((row.number, why))
                case .partial(let rs, let why): result.records += rs; result.rejected.append((row.number, why))
                }
            }
            func begin(document name: String) throws { document = name; decoder = mapping.format.makeDecoder() }
            func write(_ bytes: UnsafeRawBufferPointer) throws { try decoder?.feed(bytes, handle) }
            func end() throws -> DocumentInfo {
                let info = try decoder?.finish(handle) ?? DocumentInfo(rows: 0)
                if result.read >= limit { throw Enough() }
                return info
            }
        }
        let connector = try MappingLoader(types: TypeCatalog(), connectors: BuiltinConnectors.registry).connector(for: mapping)
        let sink = Sink(mapping, period, rows)
        do { try connector.fetch(FetchContext(source: mapping.source, period: period), into: sink) }
        catch is Sink.Enough {}
        catch let e as FetchError { throw ValidationError("拉取失败：\(e.message)") }
        catch let e as DecodeError { throw ValidationError("数据无法解析：\(e.message)") }
        return sink.result
    }

    /// Column problems of a mapping against a sample's header, as `FILE:LINE:COLUMN: message`.
    static func columns(of mapping: Mapping, sample: String) throws -> [String] {
        do {
            _ = try run(mapping, sample: sample, period: Period(year: 2026, month: 1)!)
            return []
        } catch let e as RowMapper.MissingColumns {
            return e.missing.map { m in
                "\(m.location): 字段 \(m.field) 的来源列 \"\(m.column)\" 在样本 \(sample) 的表头中不存在" + (m.suggestion.map { "，是否应为 \"\($0)\"？" } ?? "")
            }
        }
    }
}
