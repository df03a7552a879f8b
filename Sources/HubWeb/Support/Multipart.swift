import Foundation

/// `multipart/form-data` as browsers send a form with a file: each part's name, file name,
/// content type and bytes. Only what the photo form needs; anything malformed gives nil.
struct MultipartForm {
    struct Part { var name: String; var filename: String?; var contentType: String?; var body: [UInt8] }
    var parts: [Part]

    func text(_ name: String) -> String? { parts.first { $0.name == name && $0.filename == nil }.map { String(decoding: $0.body, as: UTF8.self) } }
    func file(_ name: String) -> Part? { parts.first { $0.name == name && $0.filename != nil } }

    init?(contentType: String, body: [UInt8]) {
        guard contentType.lowercased().hasPrefix("multipart/form-data"),
              let b = contentType.components(separatedBy: ";").map({ $0.trimmingCharacters(in: .whitespaces) }).first(where: { $0.lowercased().hasPrefix("boundary=") })
        else { return nil }
        let boundary = Array(("--" + b.dropFirst(9).trimmingCharacters(in: CharacterSet(charactersIn: "\""))).utf8)
        guard boundary.count > 2, boundary.count <= 72 else { return nil }
        var parts: [Part] = []
        let starts = Self.occurrences(of: boundary, in: body)
        guard starts.count >= 2 else { return nil }
        for (a, b) in zip(starts, starts.dropFirst()) {
            var start = a + boundary.count
            guard start + 2 <= body.count, body[start] == 13, body[start + 1] == 10 else { continue }
            start += 2
            var end = b
            if end >= 2, body[end - 2] == 13, body[end - 1] == 10 { end -= 2 }
            guard let headEnd = Self.occurrences(of: [13, 10, 13, 10], in: body, from: start, upTo: end).first else { return nil }
            let head = String(decoding: body[start..<headEnd], as: UTF8.self)
            var name: String?, filename: String?, type: String?
            for line in head.components(separatedBy: "\r\n") {
                let lower = line.lowercased()
                if lower.hasPrefix("content-disposition:") {
                    name = Self.parameter("name", in: line)
                    filename = Self.parameter("filename", in: line)
                } else if lower.hasPrefix("content-type:") {
                    type = line.dropFirst(13).trimmingCharacters(in: .whitespaces)
                }
            }
            guard let name else { return nil }
            parts.append(Part(name: name, filename: filename, contentType: type, body: Array(body[(headEnd + 4)..<end])))
        }
        self.parts = parts
    }

    static func parameter(_ key: String, in line: String) -> String? {
        for piece in line.components(separatedBy: ";") {
            let p = piece.trimmingCharacters(in: .whitespaces)
            if p.lowercased().hasPrefix(key + "=") { return String(p.dropFirst(key.count + 1)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        return nil
    }

    static func occurrences(of needle: [UInt8], in hay: [UInt8], from: Int = 0, upTo: Int? = nil) -> [Int] {
        let end = (upTo ?? hay.count) - needle.count
        guard end >= from, let first = needle.first else { return [] }
        var out: [Int] = []
        var i = from
        while i <= end {
            if hay[i] == first && hay[(i + 1)..<(i + needle.count)].elementsEqual(needle.dropFirst()) { out.append(i); i += needle.count } else { i += 1 }
        }
        return out
    }
}
