import Foundation

/// A photo taken on a visit, as it is kept with the case.
public struct NewPhoto: Sendable {
    public var caseID: Int64
    public var contentType: String
    public var bytes: [UInt8]
    public var note: String
    /// Whether the photo's location was kept on purpose (otherwise it was removed).
    public var keptLocation: Bool
    public var uploadedBy: String
    public var uploadedAt: String
    public init(caseID: Int64, contentType: String, bytes: [UInt8], note: String, keptLocation: Bool, uploadedBy: String, uploadedAt: String = Timestamp.now()) {
        self.caseID = caseID; self.contentType = contentType; self.bytes = bytes; self.note = note
        self.keptLocation = keptLocation; self.uploadedBy = uploadedBy; self.uploadedAt = uploadedAt
    }
}

public struct PhotoInfo: Sendable, Hashable {
    public var id: Int64
    public var caseID: Int64
    public var contentType: String
    public var size: Int
    public var note: String
    public var keptLocation: Bool
    public var uploadedBy: String
    public var uploadedAt: String
    public init(id: Int64, caseID: Int64, contentType: String, size: Int, note: String, keptLocation: Bool, uploadedBy: String, uploadedAt: String) {
        self.id = id; self.caseID = caseID; self.contentType = contentType; self.size = size; self.note = note
        self.keptLocation = keptLocation; self.uploadedBy = uploadedBy; self.uploadedAt = uploadedAt
    }
}

/// What is checked and removed before a photo is kept: only JPEG and PNG, at most `maxBytes`,
/// and — unless the verifier keeps it on purpose — every trace of where it was taken: the
/// EXIF GPS block of a JPEG (its entries and values overwritten with zeros), XMP packets
/// (which may repeat the location), and a PNG's metadata chunks.
public enum PhotoSanitizer {
    public static let maxBytes = 8 << 20
    public struct Refused: Error, CustomStringConvertible { public let description: String }

    /// The photo as it will be kept, its content type, and whether a location was found (and,
    /// unless `keepLocation`, removed).
    public static func sanitize(_ input: [UInt8], keepLocation: Bool) throws(Refused) -> (bytes: [UInt8], contentType: String, hadLocation: Bool) {
        guard !input.isEmpty else { throw Refused(description: "没有选择照片") }
        guard input.count <= maxBytes else { throw Refused(description: "照片太大（\(input.count / 1_048_576) MB），每张不超过 \(maxBytes >> 20) MB") }
        if input.starts(with: [0xFF, 0xD8, 0xFF]) { return try jpeg(input, keepLocation: keepLocation) }
        if input.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try png(input, keepLocation: keepLocation) }
        throw Refused(description: "只接受 JPEG 或 PNG 照片")
    }

    static func jpeg(_ input: [UInt8], keepLocation: Bool) throws(Refused) -> ([UInt8], String, Bool) {
        var out: [UInt8] = [0xFF, 0xD8]
        var i = 2
        var hadLocation = false
        while i + 4 <= input.count {
            guard input[i] == 0xFF else { throw Refused(description: "JPEG 文件已损坏") }
            let marker = input[i + 1]
            if marker == 0xD9 { out += [0xFF, 0xD9]; return (out, "image/jpeg", hadLocation) }
            if marker == 0xDA {
                // The image data, up to the end-of-image marker. What a camera appends after it (a
                // motion photo's video, a second picture with its own EXIF) goes unless kept.
                if keepLocation { out += input[i...]; return (out, "image/jpeg", hadLocation) }
                var j = i + 2
                while j + 1 < input.count && !(input[j] == 0xFF && input[j + 1] == 0xD9) { j += 1 }
                if j + 1 < input.count && j + 2 < input.count { hadLocation = true }   // a trailer was there
                out += input[i..<min(j + 2, input.count)]
                return (out, "image/jpeg", hadLocation)
            }
            let length = Int(input[i + 2]) << 8 | Int(input[i + 3])
            guard length >= 2, i + 2 + length <= input.count else { throw Refused(description: "JPEG 文件已损坏") }
            var segment = Array(input[i..<(i + 2 + length)])
            if marker == 0xE1 {
                let payload = 4
                if segment.count >= payload + 6, Array(segment[payload..<(payload + 6)]) == Array("Exif\0\0".utf8) {
                    if removeGPS(&segment, tiffAt: payload + 6, dryRun: keepLocation) { hadLocation = true }
                } else if segment.count > payload + 28,
                          String(decoding: segment[payload..<min(segment.count, payload + 40)], as: UTF8.self).hasPrefix("http://ns.adobe.com/x") {
                    // XMP (standard or extended) can repeat the location in text: dropped whole unless kept.
                    if String(decoding: segment, as: UTF8.self).contains("GPS") { hadLocation = true }
                    if !keepLocation { i += 2 + length; continue }
                }
            }
            // A multi-picture index (MPF) points at pictures after the end of the image, which go.
            if marker == 0xE2, !keepLocation, segment.count >= 8, Array(segment[4..<8]) == Array("MPF\0".utf8) { i += 2 + length; continue }
            out += segment
            i += 2 + length
        }
        throw Refused(description: "JPEG 文件不完整")
    }

    /// Zeros the GPS IFD of the TIFF structure at `tiffAt` (its entries and the values they point
    /// to) and leaves it with no entries. Returns whether there was one.
    static func removeGPS(_ s: inout [UInt8], tiffAt t: Int, dryRun: Bool) -> Bool {
        guard s.count >= t + 8 else { return false }
        let little = s[t] == 0x49
        func u16(_ o: Int) -> Int? { guard o >= 0, t + o + 2 <= s.count else { return nil }; let a = Int(s[t + o]), b = Int(s[t + o + 1]); return little ? a | b << 8 : a << 8 | b }
        func u32(_ o: Int) -> Int? {
            guard o >= 0, t + o + 4 <= s.count else { return nil }
            let b = (0..<4).map { Int(s[t + o + $0]) }
            return little ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]
        }
        guard let ifd0 = u32(4), let n0 = u16(ifd0) else { return false }
        var gps: Int? = nil
        for e in 0..<n0 {
            let entry = ifd0 + 2 + e * 12
            if u16(entry) == 0x8825 { gps = u32(entry + 8) }
        }
        guard let g = gps, let count = u16(g), count > 0 else { return false }
        if dryRun { return true }
        let sizes = [1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8]
        for e in 0..<count {
            let entry = g + 2 + e * 12
            let type = u16(entry + 2), n = u32(entry + 4), at = u32(entry + 8)
            for k in 0..<12 where t + entry + k < s.count { s[t + entry + k] = 0 }
            guard let type, let n, let unit = sizes[type], n < 1 << 20 else { continue }
            let bytes = unit * n
            if bytes > 4, let at, t + at + bytes <= s.count {
                for k in 0..<bytes { s[t + at + k] = 0 }
            }
        }
        s[t + g] = 0; s[t + g + 1] = 0
        return true
    }

    static func png(_ input: [UInt8], keepLocation: Bool) throws(Refused) -> ([UInt8], String, Bool) {
        var out = Array(input[0..<8])
        var i = 8
        var hadLocation = false
        let metadata: Set<String> = ["eXIf", "tEXt", "iTXt", "zTXt"]
        while i + 12 <= input.count {
            let length = Int(input[i]) << 24 | Int(input[i + 1]) << 16 | Int(input[i + 2]) << 8 | Int(input[i + 3])
            guard length >= 0, i + 12 + length <= input.count else { throw Refused(description: "PNG 文件已损坏") }
            let type = String(decoding: input[(i + 4)..<(i + 8)], as: UTF8.self)
            let chunk = input[i..<(i + 12 + length)]
            if metadata.contains(type) {
                hadLocation = hadLocation || type == "eXIf" || String(decoding: chunk, as: UTF8.self).contains("GPS")
                if !keepLocation { i += 12 + length; continue }
            }
            out += chunk
            i += 12 + length
            if type == "IEND" { return (out, "image/png", hadLocation) }
        }
        throw Refused(description: "PNG 文件不完整")
    }
}
