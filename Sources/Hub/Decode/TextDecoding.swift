#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Decodes GB18030 (a superset of GBK and GB2312) through the C library's iconv, which fails on
/// invalid bytes instead of guessing: a wrong encoding is reported, never turned into mojibake.
final class GB18030Decoder {
    private let cd: iconv_t
    private var out = [UInt8](repeating: 0, count: 4096)

    init() {
        cd = iconv_open("UTF-8", "GB18030")
        precondition(Int(bitPattern: cd) != -1, "iconv 不支持 GB18030")
    }
    deinit { iconv_close(cd) }

    /// The bytes as a String, or nil when they are not valid GB18030.
    func decode(_ bytes: UnsafeRawBufferPointer) -> String? {
        if bytes.isEmpty { return "" }
        if out.count < bytes.count * 2 + 16 { out = [UInt8](repeating: 0, count: bytes.count * 2 + 16) }
        _ = iconv(cd, nil, nil, nil, nil)
        var inPtr: UnsafeMutablePointer<CChar>? = UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: CChar.self))
        var inLeft = bytes.count
        let produced: Int? = out.withUnsafeMutableBytes { ob -> Int? in
            var outPtr: UnsafeMutablePointer<CChar>? = ob.baseAddress!.assumingMemoryBound(to: CChar.self)
            var outLeft = ob.count
            let r = iconv(cd, &inPtr, &inLeft, &outPtr, &outLeft)
            if r == -1 || inLeft != 0 { return nil }
            return ob.count - outLeft
        }
        guard let n = produced else { return nil }
        return out.withUnsafeBufferPointer { String(decoding: $0[0..<n], as: UTF8.self) }
    }
}

enum TextBytes {
    static func isASCII(_ b: UnsafeRawBufferPointer) -> Bool {
        for x in b where x >= 0x80 { return false }
        return true
    }
    /// ASCII without control characters below 0x09 (so no NUL).
    @inline(__always) static func isPrintableASCII(_ b: UnsafeRawBufferPointer) -> Bool {
        for x in b where x >= 0x80 || x < 0x09 { return false }
        return true
    }
    static func utf8(_ b: UnsafeRawBufferPointer) -> String? {
        if isASCII(b) { return String(decoding: b, as: UTF8.self) }
        return String(validating: b, as: UTF8.self)
    }
}
