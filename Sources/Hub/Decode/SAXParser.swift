import CXMLPush

/// libxml2's push parser with SAX2 callbacks, fed chunk by chunk as bytes arrive.
///
/// The push interface suits the connectors, which push chunks; libxml2's pull reader would need
/// the whole document or a thread. Safety (in `Sources/CXMLPush`): no network access, no DTD
/// loading, no entity substitution, and any document with a DOCTYPE or an entity declaration
/// is refused outright — department feeds have no use for one, and it is where external
/// entities (XXE) and expansion bombs live.
final class SAXParser {
    struct Attribute { var name: String; var value: String }

    var onStart: (String, [Attribute]) -> Void = { _, _ in }
    var onEnd: (String) -> Void = { _ in }
    var onText: (UnsafeBufferPointer<UInt8>) -> Void = { _ in }

    private var sax: OpaquePointer? = nil
    let name: String

    init(name: String) { self.name = name }

    deinit { if let sax { hub_sax_free(sax) } }

    private func start() throws {
        let me = Unmanaged.passUnretained(self).toOpaque()
        sax = hub_sax_new(me, { user, localname, n, names, values, lengths in
            let me = Unmanaged<SAXParser>.fromOpaque(user!).takeUnretainedValue()
            var attrs: [Attribute] = []
            for i in 0..<Int(n) {
                let v = UnsafeRawBufferPointer(start: values![i], count: Int(lengths![i]))
                attrs.append(Attribute(name: String(cString: names![i]!), value: String(decoding: v, as: UTF8.self)))
            }
            me.onStart(String(cString: localname!), attrs)
        }, { user, localname in
            Unmanaged<SAXParser>.fromOpaque(user!).takeUnretainedValue().onEnd(String(cString: localname!))
        }, { user, text, len in
            if let text, len > 0 {
                Unmanaged<SAXParser>.fromOpaque(user!).takeUnretainedValue().onText(UnsafeBufferPointer(start: text, count: Int(len)))
            }
        }, name)
        if sax == nil { throw DecodeError("libxml2 解析器无法创建") }
    }

    func feed(_ bytes: UnsafeRawBufferPointer, final: Bool = false) throws {
        if sax == nil { try start() }
        var offset = 0
        repeat {
            let n = min(bytes.count - offset, 16 << 20)
            let last = final && offset + n >= bytes.count
            let base = bytes.baseAddress.map { ($0 + offset).assumingMemoryBound(to: CChar.self) }
            let rc = hub_sax_feed(sax, n > 0 ? base : nil, Int32(n), last ? 1 : 0)
            if rc == 1 { throw DecodeError(String(cString: hub_sax_message(sax))) }
            if rc != 0 {
                throw DecodeError("XML 格式错误（第 \(hub_sax_line(sax)) 行）：\(String(cString: hub_sax_message(sax)))")
            }
            offset += n
        } while offset < bytes.count
    }

    func finish() throws {
        try feed(UnsafeRawBufferPointer(start: nil, count: 0), final: true)
    }
}
