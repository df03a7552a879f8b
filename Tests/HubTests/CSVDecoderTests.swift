import Foundation
import Testing
@testable import Hub

@Suite struct CSVDecoderTests {
    func gb18030(_ s: String) -> [UInt8] {
        Array(s.data(using: String.Encoding(rawValue: 0x8000_0632))!)
    }

    @Test func quotedFieldsWithCommasQuotesAndNewlines() throws {
        let text = "姓名,地址,备注\r\n张三,\"河南省,禹州市\",\"他说\"\"好\"\"\"\r\n李四,\"第一行\n第二行\",\r\n"
        for chunk in [1, 2, 3, 7, 4096] {
            var d = CSVDecoder(options: CSVOptions())
            let (rows, info) = try decodeAll(&d, Array(text.utf8), chunk: chunk)
            #expect(info.rows == 2)
            #expect(rows.map(\.number) == [2, 3])
            #expect(rows[0]["地址"] == "河南省,禹州市")
            #expect(rows[0]["备注"] == "他说\"好\"")
            #expect(rows[1]["地址"] == "第一行\n第二行")
            #expect(rows[1]["备注"] == nil)
        }
    }

    @Test func gb18030WithTitleRowAndFooter() throws {
        var o = CSVOptions()
        o.encoding = .gb18030; o.headerRow = 2; o.footerRows = 1
        let bytes = gb18030("禹州市医疗保障局 2026年10月,,\n结算ID,证件号码,姓名\nA1,11010519491231002X,张秀英\nA2,110105491231002,王𠀀\n合计,,\n")
        for chunk in [1, 5, 1 << 20] {
            var d = CSVDecoder(options: o)
            let (rows, _) = try decodeAll(&d, bytes, chunk: chunk)
            #expect(rows.count == 2)
            #expect(rows[0]["姓名"] == "张秀英")
            #expect(rows[1]["姓名"] == "王𠀀")   // a four-byte GB18030 character
            #expect(rows[0].number == 3)
        }
    }

    @Test func autoEncodingPicksUTF8OrGB18030FromTheHeader() throws {
        var d1 = CSVDecoder(options: CSVOptions())
        #expect(try decodeAll(&d1, gb18030("姓名\n张三\n")).rows.first?["姓名"] == "张三")
        var d2 = CSVDecoder(options: CSVOptions())
        #expect(try decodeAll(&d2, [0xEF, 0xBB, 0xBF] + Array("姓名\n张三\n".utf8), chunk: 1).rows.first?["姓名"] == "张三")
    }

    @Test func aRowInTheWrongEncodingIsFlaggedAloneAndTheOthersGoOn() throws {
        var o = CSVOptions(); o.encoding = .utf8
        var d = CSVDecoder(options: o)
        let bytes = Array("姓名,村\n张三,东村\n".utf8) + gb18030("李四,西村\n") + Array("王五,南村\n".utf8)
        let (rows, _) = try decodeAll(&d, bytes)
        #expect(rows.count == 3)
        #expect(rows[0].problem == nil && rows[2].problem == nil)
        #expect(rows[1].problem?.contains("utf-8") == true)
        #expect(rows[1].number == 3)
    }

    @Test func aHeaderThatCannotBeDecodedFailsTheDocumentWithAHint() {
        var o = CSVOptions(); o.encoding = .utf8
        var d = CSVDecoder(options: o)
        #expect {
            _ = try decodeAll(&d, gb18030("姓名,村\n张三,东村\n"))
        } throws: { ($0 as? DecodeError)?.message.contains("gb18030") == true }
    }

    @Test func raggedRowsUnterminatedQuotesAndBlankLines() throws {
        var d = CSVDecoder(options: CSVOptions())
        let (rows, _) = try decodeAll(&d, Array("a,b\n1,2\n\n3\n4,5,6\n7,8,,\n\"9,10\n11,12\n".utf8))
        #expect(rows.map(\.number) == [2, 4, 5, 6, 7])
        #expect(rows[1]["b"] == nil && rows[1].problem == nil)          // short row: missing values are empty
        #expect(rows[2].problem?.contains("多于表头") == true)           // extra non-empty value
        #expect(rows[3].problem == nil)                                  // trailing empty fields are fine
        #expect(rows[4].problem?.contains("引号未闭合") == true)         // kept, not lost
    }

    @Test func tabDelimitedWithoutHeader() throws {
        var o = CSVOptions(); o.delimiter = UInt8(ascii: "\t"); o.headerRow = 0
        var d = CSVDecoder(options: o)
        let (rows, _) = try decodeAll(&d, Array("x\ty\nz\tw".utf8))
        #expect(rows.count == 2 && rows[1]["$2"] == "w" && rows[0].number == 1)
    }
}
