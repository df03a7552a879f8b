import Testing
@testable import Hub

@Suite struct ResidentIDTests {
    @Test func standardExampleIsValid() throws {
        let id = try ResidentID(parsing: "11010519491231002X")
        #expect(id.value == "11010519491231002X")
        #expect(id.birthDate == "1949-12-31")
        #expect(!id.isMale)
        #expect(id.masked == "110105********002X")
    }

    @Test func wrongCheckCharacterIsRejectedWithTheExpectedOne() {
        #expect(throws: ResidentID.Problem.badCheckCharacter(expected: "X", found: "3")) {
            try ResidentID(parsing: "110105194912310023")
        }
    }

    @Test func fifteenDigitFormIsConvertedToEighteen() throws {
        // 15-digit: 110105 491231 002 → 110105 19491231 002 + check X
        #expect(try ResidentID(parsing: "110105491231002").value == "11010519491231002X")
        // A retired address code (411023, 许昌县) is still a valid number.
        let id = try ResidentID(parsing: "411023560308123")
        #expect(id.value.hasPrefix("41102319560308123"))
        #expect(id.value.count == 18)
        #expect(try ResidentID(parsing: id.value) == id)
    }

    @Test func exportQuirksAreNormalised() throws {
        #expect(try ResidentID(parsing: "11010519491231002x").value == "11010519491231002X")
        #expect(try ResidentID(parsing: " 110105 19491231002X ").value == "11010519491231002X")
        #expect(try ResidentID(parsing: "１１０１０５１９４９１２３１００２Ｘ").value == "11010519491231002X")
    }

    @Test func impossibleInputsSayWhy() {
        #expect(throws: ResidentID.Problem.badBirthDate("19800230")) { try ResidentID(parsing: makeID("411081", "19800230", 11)) }
        #expect(throws: ResidentID.Problem.badLength(17)) { try ResidentID(parsing: "41108119800101001") }
        #expect(throws: ResidentID.Problem.empty) { try ResidentID(parsing: "  ") }
        #expect(throws: ResidentID.Problem.badCharacter("X")) { try ResidentID(parsing: "4110811980X101001") }
        #expect(throws: ResidentID.Problem.badCharacter("O")) { try ResidentID(parsing: "41108119800101O011") }
    }

    @Test func anythingShapedLikeAnIDIsMaskedInDisplays() {
        #expect(ResidentID.maskIfLikeID("110105194912310021") == "110105********0021")   // even with a wrong check digit
        #expect(ResidentID.maskIfLikeID("110105491231002") == "110105*****1002")
        #expect(ResidentID.maskIfLikeID("S000123") == "S000123")
        #expect(ResidentID.maskIfLikeID("2026-10-01 10:00:00") == "2026-10-01 10:00:00")
        // Inside longer numbers and sentences: a disability certificate number is the ID number plus two digits.
        #expect(ResidentID.maskEmbedded("41108119700420081743") == "411081**********1743")
        #expect(ResidentID.maskEmbedded("持证人 41108119700420081X，自付 68,213.40 元") == "持证人 411081********081X，自付 68,213.40 元")
        #expect(ResidentID.maskEmbedded("户编号 4110811002010001，电话 13800138000") == "户编号 4110811002010001，电话 13800138000")
        #expect(ResidentID.maskEmbedded("2026-10-01 10:00:00，X 光 3 次") == "2026-10-01 10:00:00，X 光 3 次")
    }

    @Test func messagesAreChineseForTheQuarantine() {
        #expect(ResidentID.Problem.badCheckCharacter(expected: "X", found: "3").message == "身份证号校验位错误（应为 X，实为 3）")
    }
}
