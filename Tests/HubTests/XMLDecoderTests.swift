import Foundation
import Testing
@testable import Hub

@Suite struct XMLDecoderTests {
    let doc = """
    <?xml version="1.0" encoding="UTF-8"?>
    <dpf:CertificateList xmlns:dpf="urn:cdpf:cert:2" generated="2026-11-03">
      <dpf:Certificate seq="1">
        <dpf:CertNo>11010519491231002X12</dpf:CertNo>
        <dpf:Name>张秀英 &amp; 家属</dpf:Name>
        <dpf:Address code="411081100201"><dpf:Village>东村</dpf:Village></dpf:Address>
        <dpf:Note><![CDATA[有<尖括号>]]></dpf:Note>
      </dpf:Certificate>
      <dpf:Certificate seq="2"><dpf:CertNo>41108119800101001844</dpf:CertNo><dpf:Name/></dpf:Certificate>
    </dpf:CertificateList>
    """

    @Test func namespacedRecordsInAnyChunking() throws {
        for chunk in [1, 7, 1 << 20] {
            var d = XMLStreamDecoder(options: XMLOptions(recordElement: "Certificate"))
            let (rows, info) = try decodeAll(&d, Array(doc.utf8), chunk: chunk)
            #expect(info.rows == 2)
            #expect(rows[0]["CertNo"] == "11010519491231002X12")
            #expect(rows[0]["Name"] == "张秀英 & 家属")
            #expect(rows[0]["@seq"] == "1")
            #expect(rows[0]["Address.Village"] == "东村")
            #expect(rows[0]["Address@code"] == "411081100201")
            #expect(rows[0]["Note"] == "有<尖括号>")
            #expect(rows[1]["Name"] == nil)
        }
    }

    @Test func externalEntitiesAreRefusedWithoutReadingTheFile() throws {
        // A secret file the document tries to pull in; its content must never appear.
        let secret = scratchDirectory("xxe").appendingPathComponent("secret.txt")
        try "TOP-SECRET-CONTENT".write(to: secret, atomically: true, encoding: .utf8)
        let xxe = """
        <?xml version="1.0"?>
        <!DOCTYPE r [<!ENTITY x SYSTEM "file://\(secret.path)">]>
        <r><Certificate><Name>&x;</Name></Certificate></r>
        """
        var d = XMLStreamDecoder(options: XMLOptions(recordElement: "Certificate"))
        var seen: [RawRow] = []
        #expect {
            try Array(xxe.utf8).withUnsafeBytes { try d.feed($0) { seen.append($0) } }
            _ = try d.finish { seen.append($0) }
        } throws: { ($0 as? DecodeError)?.message.contains("DOCTYPE") == true }
        #expect(!seen.contains { $0.values.contains { $0?.contains("TOP-SECRET") == true } })
    }

    @Test func entityExpansionBombIsRefused() {
        var bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n"
        for i in 1...9 { bomb += "<!ENTITY lol\(i) \"" + String(repeating: "&lol\(i == 1 ? "" : String(i - 1));", count: 10) + "\">\n" }
        bomb += "]>\n<r><Certificate><Name>&lol9;</Name></Certificate></r>"
        var d = XMLStreamDecoder(options: XMLOptions(recordElement: "Certificate"))
        #expect {
            _ = try decodeAll(&d, Array(bomb.utf8))
        } throws: { ($0 as? DecodeError)?.message.contains("拒收") == true }
    }

    @Test func malformedXMLNamesTheLine() {
        var d = XMLStreamDecoder(options: XMLOptions(recordElement: "Certificate"))
        #expect {
            _ = try decodeAll(&d, Array("<r>\n<Certificate><Name>x</Nam></Certificate></r>".utf8))
        } throws: { ($0 as? DecodeError)?.message.contains("第 2 行") == true }
        var d2 = XMLStreamDecoder(options: XMLOptions(recordElement: "Certificate"))
        #expect {
            _ = try decodeAll(&d2, Array("<r><Cert/></r>".utf8))
        } throws: { ($0 as? DecodeError)?.message.contains("Cert") == true }
    }
}

@Suite struct XLSXDecoderTests {
    func workbook(shared: Bool) throws -> [UInt8] {
        let url = scratchDirectory("xlsx").appendingPathComponent("roster.xlsx")
        let w = try XLSXWriter(url: url, sharedStrings: shared)
        try w.addSheet("说明") { row in try row([.text("这是说明页")]) }
        try w.addSheet("花名册") { row in
            try row([.text("全国防返贫监测信息系统 花名册导出")])
            try row([.text("户编号"), .text("证件号码"), .text("人数"), .text("纳入监测日期"), .text("备注")])
            try row([.text("H001"), .text("11010519491231002X"), .number("3"), .number("45658"), .text("a & <b>")])
            try row([.text("H002"), .empty, .number("1"), .empty, .text("第二户")])
            try row([.text("合计"), .empty, .number("4")])
        }
        try w.close()
        return Array(try Data(contentsOf: url))
    }

    @Test func namedSheetTitleRowFooterSharedAndInlineStrings() throws {
        for shared in [true, false] {
            var o = XLSXOptions(); o.sheet = "花名册"; o.headerRow = 2; o.footerRows = 1
            var d = XLSXDecoder(options: o)
            let (rows, _) = try decodeAll(&d, try workbook(shared: shared), chunk: 1000)
            #expect(rows.count == 2)
            #expect(rows[0]["证件号码"] == "11010519491231002X")
            #expect(rows[0]["人数"] == "3" && rows[0].number == 3)
            #expect(rows[0]["备注"] == "a & <b>")
            #expect(rows[1]["证件号码"] == nil && rows[1]["备注"] == "第二户")
            // The serial number maps to a date with `format: excel`.
            var spec = FieldSpec(name: "d", type: .date, from: [], constant: nil, required: false, defaultValue: nil, location: SourceLocation(file: "", line: 1, column: 1))
            spec.formats = [try DateFormat("excel")]
            #expect(FieldParser.parse(rows[0]["纳入监测日期"]!, spec) == .success(.date(CivilDate(year: 2025, month: 1, day: 1)!)))
        }
    }

    @Test func firstSheetByDefaultAndClearErrors() throws {
        var d = XLSXDecoder(options: XLSXOptions())
        let (rows, _) = try decodeAll(&d, try workbook(shared: true))
        #expect(rows.isEmpty)   // the first sheet holds only its header line
        var o = XLSXOptions(); o.sheet = "名册"
        var d2 = XLSXDecoder(options: o)
        #expect { _ = try decodeAll(&d2, try workbook(shared: true)) } throws: { ($0 as? DecodeError)?.message.contains("花名册") == true }
        var d3 = XLSXDecoder(options: XLSXOptions())
        #expect { _ = try decodeAll(&d3, Array("not a zip file".utf8)) } throws: { $0 is DecodeError }
    }
}
