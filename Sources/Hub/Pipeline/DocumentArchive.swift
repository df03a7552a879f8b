import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CZstd

/// The raw documents pulls have read, kept as Zstandard files for a retention period: what a
/// department actually delivered, for `hubd replay` (a month through a changed mapping or
/// rule) and for settling a dispute with the department.
///
/// Layout: `FOLDER/<source>/<period>/<fingerprint>.zst` (read with `zstdcat`), one file per distinct content — a
/// re-pull of identical bytes adds nothing, a corrected delivery adds a file beside the first.
/// Which run read which document under which name is in the store (`run_documents`).
public struct DocumentArchive: Sendable {
    public var folder: URL
    /// Months a period's documents are kept after the period (0: kept until deleted by hand).
    public var retentionMonths: Int

    /// Folders of the archive: personal data, for the service's user (and its group) only.
    static var privateFolder: [FileAttributeKey: Any] { [.posixPermissions: 0o750] }

    public init(folder: URL, retentionMonths: Int = 13) {
        self.folder = folder; self.retentionMonths = retentionMonths
    }

    /// A source name as one path component (mapping names are file names already; anything
    /// else is spelled out so that no name can climb out of the folder).
    static func component(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if CharacterSet.alphanumerics.contains(u) || u == "-" || u == "_" { out.unicodeScalars.append(u) } else {
                out += String(format: "%%%02X", u.value)
            }
        }
        return out.isEmpty || out.hasPrefix(".") ? "_" + out : out
    }

    public func url(source: String, period: Period, fingerprint: String) -> URL {
        folder.appendingPathComponent(Self.component(source)).appendingPathComponent(period.description)
            .appendingPathComponent(Self.component(fingerprint) + ".zst")
    }

    public func contains(source: String, period: Period, fingerprint: String) -> Bool {
        FileManager.default.fileExists(atPath: url(source: source, period: period, fingerprint: fingerprint).path)
    }

    /// Starts writing one document; `finish` names it by its fingerprint.
    func writer(source: String, period: Period) throws -> ArchiveWriter {
        try ArchiveWriter(archive: self, source: source, period: period)
    }

    /// Reads an archived document back in chunks, checking that the bytes still have the
    /// fingerprint they were archived under.
    public func read(source: String, period: Period, fingerprint: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let path = url(source: source, period: period, fingerprint: fingerprint).path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ArchiveError("归档文件 \(path) 无法打开：\(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let dctx = ZSTD_createDCtx() else { throw ArchiveError("内存不足") }
        defer { ZSTD_freeDCtx(dctx) }
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: ZSTD_DStreamInSize(), alignment: 16)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: ZSTD_DStreamOutSize(), alignment: 16)
        defer { input.deallocate(); output.deallocate() }
        var check = StreamFingerprint()
        var last = 0
        while true {
            let n = Glibc.read(fd, input.baseAddress!, input.count)
            if n < 0 { if errno == EINTR { continue }; throw ArchiveError("读归档文件 \(path) 失败：\(String(cString: strerror(errno)))") }
            if n == 0 { break }
            var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: n, pos: 0)
            while inBuf.pos < inBuf.size {
                var outBuf = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
                last = ZSTD_decompressStream(dctx, &outBuf, &inBuf)
                if ZSTD_isError(last) != 0 { throw ArchiveError("归档文件 \(path) 已损坏：\(String(cString: ZSTD_getErrorName(last)))") }
                let chunk = UnsafeRawBufferPointer(rebasing: output[0..<outBuf.pos])
                check.update(chunk)
                try body(chunk)
            }
        }
        guard last == 0 else { throw ArchiveError("归档文件 \(path) 不完整（被截断）") }
        let (_, hex) = check.finish()
        guard hex == fingerprint else { throw ArchiveError("归档文件 \(path) 的内容与指纹不符（应为 \(fingerprint)，实为 \(hex)），文件已被改动或损坏") }
    }

    /// One source's month in the archive.
    public struct Month: Sendable, Equatable {
        public var source: String
        public var period: Period
        public var files: Int
        public var bytes: Int
    }

    /// What the archive holds, per source and month.
    public func months() -> [Month] {
        let fm = FileManager.default
        var out: [Month] = []
        for s in ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).sorted() where !s.hasPrefix(".") {
            let sdir = folder.appendingPathComponent(s)
            for p in ((try? fm.contentsOfDirectory(atPath: sdir.path)) ?? []).sorted() {
                guard let period = Period(p) else { continue }
                let pdir = sdir.appendingPathComponent(p)
                let files = ((try? fm.contentsOfDirectory(atPath: pdir.path)) ?? []).filter { $0.hasSuffix(".zst") }
                let bytes = files.reduce(0) { sum, f in
                    sum + ((try? fm.attributesOfItem(atPath: pdir.appendingPathComponent(f).path)[.size] as? Int) ?? 0)
                }
                out.append(Month(source: s.removingPercentEncoding ?? s, period: period, files: files.count, bytes: bytes))
            }
        }
        return out
    }

    /// The months past retention on `today`: a period's documents go once `retentionMonths`
    /// whole months have followed it (13: October 2025's go in December 2026).
    public func expired(today: CivilDate) -> [Month] {
        guard retentionMonths > 0 else { return [] }
        let cutoff = Period(year: today.year, month: today.month)!.adding(months: -retentionMonths)
        return months().filter { $0.period < cutoff }
    }

    /// Deletes the months past retention and returns them.
    @discardableResult
    public func prune(today: CivilDate) throws -> [Month] {
        let gone = expired(today: today)
        for m in gone {
            let dir = folder.appendingPathComponent(Self.component(m.source)).appendingPathComponent(m.period.description)
            try FileManager.default.removeItem(at: dir)
        }
        // Unfinished files of pulls that were killed mid-document.
        let incoming = folder.appendingPathComponent(".incoming")
        for f in (try? FileManager.default.contentsOfDirectory(atPath: incoming.path)) ?? [] {
            let u = incoming.appendingPathComponent(f)
            if let at = try? FileManager.default.attributesOfItem(atPath: u.path)[.modificationDate] as? Date, at < Date().addingTimeInterval(-86400) {
                try? FileManager.default.removeItem(at: u)
            }
        }
        return gone
    }
}

/// A byte count for people: 812 B, 13.6 KB, 71.1 MB, 2.14 GB (the archive and backup
/// commands, the 数据来源 page).
public func byteCountText(_ n: Int) -> String {
    if n < 1024 { return "\(n) B" }
    if n < 1 << 20 { return String(format: "%.1f KB", Double(n) / 1024) }
    if n < 1 << 30 { return String(format: "%.1f MB", Double(n) / 1048576) }
    return String(format: "%.2f GB", Double(n) / 1073741824)
}

public struct ArchiveError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ s: String) { description = s }
}

/// Compresses one document into a temporary file of the archive's folder as it streams by,
/// then moves it to its place under its fingerprint (or drops it, when that content is there).
final class ArchiveWriter {
    let archive: DocumentArchive
    let source: String
    let period: Period
    private let temp: String
    private var fd: Int32
    private let cctx: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer

    init(archive: DocumentArchive, source: String, period: Period) throws {
        self.archive = archive; self.source = source; self.period = period
        let incoming = archive.folder.appendingPathComponent(".incoming")
        try FileManager.default.createDirectory(at: incoming, withIntermediateDirectories: true, attributes: DocumentArchive.privateFolder)
        temp = incoming.appendingPathComponent("\(getpid())-\(UInt64.random(in: 0...UInt64.max)).zst").path
        fd = open(temp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw ArchiveError("无法写归档文件 \(temp)：\(String(cString: strerror(errno)))") }
        guard let c = ZSTD_createCCtx() else { close(fd); unlink(temp); throw ArchiveError("内存不足") }
        cctx = c
        // Level 1: a 100 MB feed in about 0.3 s on one core, to about a third of its size;
        // the frame carries a checksum, so `zstd -t` can check a file on its own.
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
        output = UnsafeMutableRawBufferPointer.allocate(byteCount: ZSTD_CStreamOutSize(), alignment: 16)
    }

    private func compress(_ bytes: UnsafeRawBufferPointer, _ directive: ZSTD_EndDirective) throws {
        var inBuf = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while true {
            var outBuf = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
            let left = ZSTD_compressStream2(cctx, &outBuf, &inBuf, directive)
            if ZSTD_isError(left) != 0 { throw ArchiveError("压缩归档文件失败：\(String(cString: ZSTD_getErrorName(left)))") }
            var done = 0
            while done < outBuf.pos {
                let n = Glibc.write(fd, output.baseAddress! + done, outBuf.pos - done)
                if n < 0 { if errno == EINTR { continue }; throw ArchiveError("写归档文件 \(temp) 失败：\(String(cString: strerror(errno)))") }
                done += n
            }
            let finished = directive == ZSTD_e_end ? left == 0 : inBuf.pos == inBuf.size
            if finished { return }
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0, !bytes.isEmpty else { return }
        try compress(bytes, ZSTD_e_continue)
    }

    /// Ends the frame, closes the file and files it under the document's fingerprint.
    func finish(fingerprint: String) throws {
        guard fd >= 0 else { return }
        try compress(UnsafeRawBufferPointer(start: nil, count: 0), ZSTD_e_end)
        // On disk before it is filed under its name: a power cut must not leave a truncated
        // file that later pulls take for the document (they skip contents already archived).
        guard fsync(fd) == 0 else { let why = String(cString: strerror(errno)); close(fd); fd = -1; unlink(temp); throw ArchiveError("写归档文件 \(temp) 失败：\(why)") }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { unlink(temp); throw ArchiveError("写归档文件 \(temp) 失败：\(String(cString: strerror(errno)))") }
        let target = archive.url(source: source, period: period, fingerprint: fingerprint)
        if FileManager.default.fileExists(atPath: target.path) { unlink(temp); return }
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true, attributes: DocumentArchive.privateFolder)
        guard rename(temp, target.path) == 0 else {
            let why = String(cString: strerror(errno)); unlink(temp)
            throw ArchiveError("归档文件无法放到 \(target.path)：\(why)")
        }
    }

    /// Drops the unfinished file.
    func abort() {
        if fd >= 0 { close(fd); fd = -1; unlink(temp) }
    }

    deinit {
        abort()
        ZSTD_freeCCtx(cctx)
        output.deallocate()
    }
}

/// Reads a month's documents back from the archive, under the names the pull read them by,
/// for `hubd replay`: the connector of a replay, whatever the mapping's own connector is.
public struct ArchivedDocumentsConnector: Connector {
    public static let kind = "archive"
    public static let optionsHelp: [(key: String, help: String)] = []
    public static func make(options: ConfigNode, directory: String, reader: ConfigReader) -> ArchivedDocumentsConnector? { nil }

    public var archive: DocumentArchive
    /// (name, fingerprint) in the order the run read them.
    public var documents: [(name: String, fingerprint: String)]

    public init(archive: DocumentArchive, documents: [(name: String, fingerprint: String)]) {
        self.archive = archive; self.documents = documents
    }

    public func fetch(_ context: FetchContext, into sink: any DocumentSink) throws {
        for d in documents {
            try sink.begin(document: d.name)
            do {
                try archive.read(source: context.source, period: context.period, fingerprint: d.fingerprint) { try sink.write($0) }
            } catch let e as ArchiveError {
                throw FetchError(e.description, retryable: false)
            }
            _ = try sink.end()
        }
    }
}
