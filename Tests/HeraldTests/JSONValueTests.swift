import HeraldSchema
import Testing

@Suite struct JSONValueTests {
    @Test func parsesEveryKindAndKeepsKeyOrder() throws {
        let value = try JSONValue(parsing: #"{"b": 1, "a": [true, false, null, 1.5, -2, "x\n\u00e9\ud83d\ude00"]}"#)
        #expect(value.objectValue?.keys.elements == ["b", "a"])
        #expect(value["a"] == [true, false, .null, 1.5, -2, "x\né😀"])
        #expect(value.jsonString == #"{"b":1,"a":[true,false,null,1.5,-2,"x\né😀"]}"#)
    }

    @Test func unpairedSurrogatesAreRefusedInInputAndReplacedInScriptOutput() throws {
        for text in [#""\ud83d""#, #""\ud83d\u0041""#, #""\udc00""#, #""a\ud83dx""#] {
            #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
        }
        #expect(try JSONValue(parsingScriptOutput: #""\ud83d""#) == "\u{FFFD}")
        #expect(try JSONValue(parsingScriptOutput: #""\ud83d\u0041""#) == "\u{FFFD}A")
        #expect(try JSONValue(parsingScriptOutput: #""\udc00b""#) == "\u{FFFD}b")
        #expect(try JSONValue(parsingScriptOutput: #""\ud83d\ude00""#) == "\u{1F600}")
        #expect(try JSONValue(parsingScriptOutput: #"{"k": "a\ud83d"}"#) == ["k": "a\u{FFFD}"])
    }

    @Test func reportsWhereTheTextBreaks() {
        #expect(throws: JSONParseError(reason: "Expected ',' or '}' in object", line: 2, column: 3)) {
            try JSONValue(parsing: "{\"a\": 1\n  \"b\" 2}")
        }
        #expect(throws: JSONParseError(reason: "Unexpected end of input", line: 1, column: 6)) {
            try JSONValue(parsing: #"{"a":"#)
        }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: "01") }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: "[1,]") }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: #""\ud800""#) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: "{} x") }
    }

    @Test func refusesNestingThatWouldExhaustTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect((try? JSONValue(parsing: fine)) != nil)
    }

    @Test func escapesControlCharactersOnOutput() {
        #expect(JSONValue.string("a\"b\\c\u{1}").jsonString == #""a\"b\\c\u0001""#)
    }

    @Test func timestampsParseAndFormatCanonically() throws {
        #expect(Timestamp(iso8601: "2024-02-29T12:30:45.5+02:00")?.iso8601 == "2024-02-29T10:30:45.500Z")
        #expect(Timestamp(iso8601: "2024-01-02")?.iso8601 == "2024-01-02T00:00:00.000Z")
        #expect(Timestamp(iso8601: "1969-12-31T23:59:59Z")?.millisecondsSince1970 == -1000)
        #expect(Timestamp(iso8601: "2023-02-29") == nil)
        #expect(Timestamp(iso8601: "2024-01-02T25:00:00Z") == nil)
        #expect(Timestamp(iso8601: "yesterday") == nil)
        #expect(Timestamp(millisecondsSince1970: 0).iso8601 == "1970-01-01T00:00:00.000Z")
    }
}
