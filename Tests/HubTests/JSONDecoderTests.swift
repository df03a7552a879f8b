import Testing
@testable import Hub

@Suite struct JSONDecoderTests {
    let page = """
    {"code":0,"msg":"成功","data":{"total":3,"next":"c2","list":[
      {"xm":"张三","sfzh":"11010519491231002X","jzlb":"农村低保","je":620.5,"dz":{"cun":"东村"}},
      {"xm":"李\\u56db","sfzh":411081198001010018,"tags":["a","b"],"note":"含}括号]和\\"引号\\""},
      {"xm":"王五","sfzh":null}
    ]}}
    """

    @Test func recordsAtAPathInAnyChunking() throws {
        var o = JSONOptions(); o.recordsAt = ["data", "list"]; o.cursorAt = ["data", "next"]
        for chunk in [1, 3, 17, 1 << 20] {
            var d = JSONStreamDecoder(options: o)
            let (rows, info) = try decodeAll(&d, Array(page.utf8), chunk: chunk)
            #expect(rows.count == 3)
            #expect(info.cursor == "c2")
            #expect(rows[0]["xm"] == "张三" && rows[0]["dz.cun"] == "东村" && rows[0]["je"] == "620.5")
            #expect(rows[1]["xm"] == "李四")
            // An 18-digit number keeps every digit (no trip through Double).
            #expect(rows[1]["sfzh"] == "411081198001010018")
            #expect(rows[1]["tags.1"] == "b")
            #expect(rows[1]["note"] == "含}括号]和\"引号\"")
            #expect(rows[2]["sfzh"] == nil)
        }
    }

    @Test func topLevelArray() throws {
        var d = JSONStreamDecoder(options: JSONOptions())
        let (rows, _) = try decodeAll(&d, Array(#"[{"a":1},{"a":2}]"#.utf8), chunk: 2)
        #expect(rows.map { $0["a"] } == ["1", "2"])
    }

    @Test func missingRecordsPathNamesTheArraysThatExist() {
        var o = JSONOptions(); o.recordsAt = ["data", "rows"]
        var d = JSONStreamDecoder(options: o)
        #expect {
            _ = try decodeAll(&d, Array(page.utf8))
        } throws: { e in
            let m = (e as? DecodeError)?.message ?? ""
            return m.contains("data.rows") && m.contains("data.list")
        }
    }

    @Test func truncatedOrMalformedDocumentsFail() {
        for bad in [#"{"data":{"list":[{"a":1},{"a":"#, #"{"data":{"list":[{"a":1}}}"#, #"[{"a":1} {"a":2}]"#, ""] {
            var o = JSONOptions(); o.recordsAt = ["data", "list"]
            if bad.hasPrefix("[") { o.recordsAt = [] }
            var d = JSONStreamDecoder(options: o)
            #expect(throws: DecodeError.self, "\(bad)") { _ = try decodeAll(&d, Array(bad.utf8)) }
        }
    }

    @Test func deepNestingIsRefused() {
        var d = JSONStreamDecoder(options: JSONOptions())
        let deep = "[" + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "]"
        #expect(throws: DecodeError.self) { _ = try decodeAll(&d, Array(deep.utf8)) }
    }

    @Test func ndjsonKeepsGoingPastABadLine() throws {
        var d = NDJSONDecoder()
        let text = "{\"id\":\"e1\",\"v\":1}\r\n{\"id\":\"e2\",\n\n{\"id\":\"e3\"}"
        let (rows, info) = try decodeAll(&d, Array(text.utf8), chunk: 4)
        #expect(info.rows == 3)
        #expect(rows.map(\.number) == [1, 2, 4])
        #expect(rows[0]["id"] == "e1" && rows[2]["id"] == "e3")
        #expect(rows[1].problem != nil)
    }
}
