@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

@Suite("JSON input: accepted lines")
struct JSONInputAcceptTests {
    @Test("minimal put: key and value; type put, no timestamp")
    func minimalPut() {
        #expect(parsedLine("{\"key\":\"name\",\"value\":\"ish\"}")
            == ParsedLine(type: .put, key: utf8("name"), value: utf8("ish"), timestamp: nil))
    }

    @Test("delete: type delete and no value")
    func delete() {
        #expect(parsedLine("{\"key\":\"name\",\"type\":\"delete\",\"timestamp\":1700000000001}")
            == ParsedLine(type: .delete, key: utf8("name"), value: [], timestamp: 1_700_000_000_001))
        #expect(parsedLine("{\"type\":\"delete\",\"key\":\"k\"}") == ParsedLine(type: .delete, key: utf8("k"), value: [], timestamp: nil))
    }

    @Test("explicit type put, empty value")
    func explicitPut() {
        #expect(parsedLine("{\"type\":\"put\",\"key\":\"k\",\"value\":\"\"}") == ParsedLine(type: .put, key: utf8("k"), value: [], timestamp: nil))
    }

    @Test("value_b64 is decoded", arguments: [
        ("", [UInt8]()), ("/w==", [0xff]), ("+/+/", [0xfb, 0xff, 0xbf]), ("AAEC", [0, 1, 2]), ("aXNo", Array("ish".utf8)),
    ])
    func valueBase64(text: String, value: [UInt8]) {
        #expect(parsedLine("{\"key\":\"k\",\"value_b64\":\"\(text)\"}") == ParsedLine(type: .put, key: utf8("k"), value: value, timestamp: nil))
    }

    @Test("timestamp present, zero, the maximum, and absent", arguments: [
        ("1700000000000", UInt64?(1_700_000_000_000)), ("0", 0), ("18446744073709551615", UInt64.max), ("7", 7),
    ])
    func timestamps(text: String, expected: UInt64?) {
        #expect(parsedLine("{\"key\":\"k\",\"value\":\"v\",\"timestamp\":\(text)}")?.timestamp == expected)
        #expect(parsedLine("{\"timestamp\":\(text),\"key\":\"k\",\"value\":\"v\"}")?.timestamp == expected)
    }

    @Test("absent timestamp is nil")
    func noTimestamp() {
        let parsed = parsedLine("{\"key\":\"k\",\"value\":\"v\"}")
        #expect(parsed != nil)
        #expect(parsed?.timestamp == nil)
    }

    @Test("a scan line (segment, offset, length, checksum) reads back; those fields are ignored")
    func scanLine() {
        let line = "{\"segment\":\"data/segment-0001.dat\",\"offset\":0,\"length\":35,\"type\":\"put\",\"key\":\"name\",\"value\":\"ish\",\"timestamp\":1700000000000,\"checksum\":\"0x1234abcd\"}"
        #expect(parsedLine(line) == ParsedLine(type: .put, key: utf8("name"), value: utf8("ish"), timestamp: 1_700_000_000_000))
        // The trailing newline (and a CR) are whitespace.
        #expect(parsedLine(line + "\n") == parsedLine(line))
        #expect(parsedLine(line + "\r\n") == parsedLine(line))
    }

    @Test("unknown fields of every JSON type are checked and ignored")
    func unknownFields() {
        let line = """
            {"a":1,"b":-0,"c":-12.5e+3,"d":1E-2,"e":0.25,"f":true,"g":false,"h":null,"i":"text with \\"escapes\\" \\u00e9",\
            "j":[],"k":{},"l":[1,[2,[3,{"deep":[true,null,{"x":"y"}]}]]],"m":{"n":{"o":[{"p":-1e10}]}},"key":"k","value":"v",\
            "n":[ 1 , "two" , { "three" : 3 } ],"z":"é😀",\
            "nested":{"key":1,"value":[2],"value_b64":"!","type":"bogus","timestamp":-1.5,"key":"again"}}
            """
        #expect(parsedLine(line) == ParsedLine(type: .put, key: utf8("k"), value: utf8("v"), timestamp: nil))
    }

    @Test("whitespace around every token")
    func whitespace() {
        let line = " \t\r{ \"key\" \t: \"k\" ,\n\"value\"  :  \"v\" , \"timestamp\" : 5 , \"x\" : [ 1 , { } ] } \t\r\n"
        #expect(parsedLine(line) == ParsedLine(type: .put, key: utf8("k"), value: utf8("v"), timestamp: 5))
    }

    @Test("blank and whitespace-only lines are nil", arguments: ["", " ", "\t", "\r", "  \t \r \n "])
    func blank(line: String) {
        let result = parseLine(line)
        #expect(result.failure == nil)
        #expect(result.success == .some(nil))
    }

    @Test("every escape", arguments: [
        ("\\\"", [UInt8(0x22)]), ("\\\\", [0x5c]), ("\\/", [0x2f]), ("\\b", [0x08]), ("\\f", [0x0c]), ("\\n", [0x0a]),
        ("\\r", [0x0d]), ("\\t", [0x09]), ("\\u0000", [0x00]), ("\\u001f", [0x1f]), ("\\u0041", [0x41]), ("\\u007F", [0x7f]),
        ("\\u00e9", [0xc3, 0xa9]), ("\\u00E9", [0xc3, 0xa9]), ("\\u07ff", [0xdf, 0xbf]), ("\\u0800", [0xe0, 0xa0, 0x80]),
        ("\\u20ac", [0xe2, 0x82, 0xac]), ("\\uFFFF", [0xef, 0xbf, 0xbf]), ("\\ud7ff", [0xed, 0x9f, 0xbf]), ("\\ue000", [0xee, 0x80, 0x80]),
        ("\\ud83d\\ude00", [0xf0, 0x9f, 0x98, 0x80]), ("\\uD83D\\uDE00", [0xf0, 0x9f, 0x98, 0x80]),
        ("\\ud800\\udc00", [0xf0, 0x90, 0x80, 0x80]), ("\\udbff\\udfff", [0xf4, 0x8f, 0xbf, 0xbf]),
    ])
    func escapes(escape: String, decoded: [UInt8]) {
        // In the value, alone and between other characters; and in the key.
        #expect(parsedLine("{\"key\":\"k\",\"value\":\"\(escape)\"}")?.value == decoded)
        #expect(parsedLine("{\"key\":\"k\",\"value\":\"abcdefghij\(escape)é\(escape)z\"}")?.value
            == utf8("abcdefghij") + decoded + [0xc3, 0xa9] + decoded + utf8("z"))
        #expect(parsedLine("{\"key\":\"\(escape)x\",\"value\":\"v\"}")?.key == decoded + utf8("x"))
    }

    @Test("escapes in field names and in type are decoded too")
    func escapedNames() {
        #expect(parsedLine("{\"k\\u0065y\":\"k\",\"\\u0074ype\":\"d\\u0065lete\"}") == ParsedLine(type: .delete, key: utf8("k"), value: [], timestamp: nil))
        #expect(parsedLine("{\"key\":\"k\",\"value\\u005fb64\":\"aXNo\"}")?.value == utf8("ish"))
    }

    @Test("raw UTF-8, DEL and '/' are accepted unescaped")
    func rawCharacters() {
        #expect(parsedLine("{\"key\":\"日本/é\",\"value\":\"😀\u{7F}\u{10FFFF}\"}")
            == ParsedLine(type: .put, key: utf8("日本/é"), value: utf8("😀\u{7F}\u{10FFFF}"), timestamp: nil))
    }

    @Test("key and value with escapes in the same line do not overwrite each other")
    func separateBuffers() {
        let line = "{\"key\":\"k\\n1\",\"x\":\"o\\tther\",\"type\":\"p\\u0075t\",\"value\":\"v\\\"2\",\"y\":[\"\\u00e9\"]}"
        #expect(parsedLine(line) == ParsedLine(type: .put, key: utf8("k\n1"), value: utf8("v\"2"), timestamp: nil))
        let b64 = "{\"value_b64\":\"\\/w==\",\"key\":\"\\u006b\",\"other\":\"\\u0041\\u0042\"}"
        #expect(parsedLine(b64) == ParsedLine(type: .put, key: utf8("k"), value: [0xff], timestamp: nil))
    }

    @Test("one parser, many lines: each result is right for its line")
    func parserReuse() {
        let parser = RecordLineParser()
        let lines = [
            "{\"key\":\"a\\u00e9\",\"value\":\"long value with an escape\\n here\"}",
            "{\"key\":\"b\",\"value\":\"x\"}",
            "",
            "{\"key\":\"c\",\"value_b64\":\"AAAA\"}",
            "{\"key\":\"d\",\"type\":\"delete\",\"timestamp\":1}",
        ]
        let expected: [ParsedLine?] = [
            ParsedLine(type: .put, key: utf8("aé"), value: utf8("long value with an escape\n here"), timestamp: nil),
            ParsedLine(type: .put, key: utf8("b"), value: utf8("x"), timestamp: nil),
            nil,
            ParsedLine(type: .put, key: utf8("c"), value: [0, 0, 0], timestamp: nil),
            ParsedLine(type: .delete, key: utf8("d"), value: [], timestamp: 1),
        ]
        for (line, want) in zip(lines, expected) {
            #expect(parseLine(line, parser: parser).success == .some(want), "\(line)")
        }
        // An error does not spoil the next line.
        #expect(parseLine("{\"key\":1}", parser: parser).failure != nil)
        #expect(parseLine("{\"key\":\"e\",\"value\":\"f\"}", parser: parser).success == .some(ParsedLine(type: .put, key: utf8("e"), value: utf8("f"), timestamp: nil)))
    }

    @Test("moderate nesting in an ignored field is fine")
    func nesting() {
        let depth = 100
        let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(parsedLine("{\"key\":\"k\",\"value\":\"v\",\"x\":\(nested)}") != nil)
        let objects = String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
        #expect(parsedLine("{\"x\":\(objects),\"key\":\"k\",\"value\":\"v\"}") != nil)
    }
}

@Suite("JSON input: rejected lines")
struct JSONInputRejectTests {
    @Test("semantic errors have no column and a fixed message", arguments: [
        ("{\"value\":\"x\"}", "missing \"key\""),
        ("{}", "missing \"key\""),
        ("{\"key\":\"\"}", "empty \"key\""),
        ("{\"key\":\"\",\"type\":\"delete\"}", "empty \"key\""),
        ("{\"key\":1,\"value\":\"x\"}", "\"key\" must be a string"),
        ("{\"key\":null,\"value\":\"x\"}", "\"key\" must be a string"),
        ("{\"key\":[\"a\"],\"value\":\"x\"}", "\"key\" must be a string"),
        ("{\"key\":\"a\",\"value\":1}", "\"value\" must be a string"),
        ("{\"key\":\"a\",\"value\":null}", "\"value\" must be a string"),
        ("{\"key\":\"a\",\"value_b64\":true}", "\"value_b64\" must be a string"),
        ("{\"key\":\"a\",\"key\":\"b\",\"value\":\"x\"}", "duplicate field \"key\""),
        ("{\"key\":\"a\",\"value\":\"x\",\"value\":\"y\"}", "duplicate field \"value\""),
        ("{\"key\":\"a\",\"value_b64\":\"\",\"value_b64\":\"\"}", "duplicate field \"value_b64\""),
        ("{\"key\":\"a\",\"type\":\"put\",\"type\":\"put\",\"value\":\"x\"}", "duplicate field \"type\""),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":1,\"timestamp\":1}", "duplicate field \"timestamp\""),
        ("{\"key\":\"\",\"key\":\"b\",\"value\":\"x\"}", "duplicate field \"key\""),
        ("{\"key\":\"a\",\"type\":\"PUT\",\"value\":\"x\"}", "\"type\" must be \"put\", \"delete\" or \"commit\""),
        ("{\"key\":\"a\",\"type\":\"tombstone\"}", "\"type\" must be \"put\", \"delete\" or \"commit\""),
        ("{\"key\":\"a\",\"type\":\"\",\"value\":\"x\"}", "\"type\" must be \"put\", \"delete\" or \"commit\""),
        ("{\"key\":\"a\",\"type\":1,\"value\":\"x\"}", "\"type\" must be \"put\", \"delete\" or \"commit\""),
        ("{\"key\":\"a\",\"type\":null,\"value\":\"x\"}", "\"type\" must be \"put\", \"delete\" or \"commit\""),
        ("{\"key\":\"a\",\"type\":\"delete\",\"value\":\"x\"}", "a delete has no value"),
        ("{\"key\":\"a\",\"type\":\"delete\",\"value\":\"\"}", "a delete has no value"),
        ("{\"key\":\"a\",\"type\":\"delete\",\"value_b64\":\"AAAA\"}", "a delete has no value"),
        ("{\"key\":\"a\"}", "a put needs \"value\" or \"value_b64\""),
        ("{\"key\":\"a\",\"type\":\"put\"}", "a put needs \"value\" or \"value_b64\""),
        ("{\"key\":\"a\",\"value\":\"x\",\"value_b64\":\"eA==\"}", "both \"value\" and \"value_b64\""),
        ("{\"key\":\"a\",\"value_b64\":\"abc\"}", "\"value_b64\" is not valid base64"),
        ("{\"key\":\"a\",\"value_b64\":\"ab=c\"}", "\"value_b64\" is not valid base64"),
        ("{\"key\":\"a\",\"value_b64\":\"aGk-\"}", "\"value_b64\" is not valid base64"),
        ("{\"key\":\"a\",\"value_b64\":\"aGk=\\n\"}", "\"value_b64\" is not valid base64"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":-1}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":-0}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":1.5}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":1.0}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":1e3}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":1E3}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":\"1700000000000\"}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":null}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":true}", "\"timestamp\" must be a non-negative integer"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":18446744073709551616}", "\"timestamp\" is larger than 18446744073709551615"),
        ("{\"key\":\"a\",\"value\":\"x\",\"timestamp\":99999999999999999999999}", "\"timestamp\" is larger than 18446744073709551615"),
    ])
    func semantic(line: String, message: String) {
        let error = lineError(line)
        #expect(error?.column == nil)
        #expect(error?.reason == message)
        #expect(error?.message == message)
    }

    /// A syntax error: the message and the 1-based byte column of `at` (its
    /// first occurrence in the line, or the end of the line if nil).
    struct SyntaxCase: Sendable, CustomTestStringConvertible {
        var line: String
        var at: String?
        var occurrence = 1
        var reason: String
        var testDescription: String { line }

        var column: Int {
            guard let at else { return utf8(line).count + 1 }
            var col = 0
            var rest = line
            for _ in 0..<occurrence {
                let c = JSONTestsColumn.find(at, in: rest)
                col += c
                rest = String(decoding: utf8(rest)[c...], as: UTF8.self)
            }
            return col
        }
    }

    @Test("syntax errors: message and column", arguments: [
        SyntaxCase(line: "{\"key\":\"a\\ud800\"}", at: "\\ud800", reason: "unpaired surrogate in a \\u escape"),
        SyntaxCase(line: "{\"key\":\"a\\ud800x\"}", at: "\\ud800", reason: "unpaired surrogate in a \\u escape"),
        SyntaxCase(line: "{\"key\":\"\\udbff\\n\"}", at: "\\udbff", reason: "unpaired surrogate in a \\u escape"),
        SyntaxCase(line: "{\"key\":\"\\ud83d\\u0041\"}", at: "\\ud83d", reason: "unpaired surrogate in a \\u escape"),
        SyntaxCase(line: "{\"key\":\"\\ud83d\\ud83d\"}", at: "\\ud83d", reason: "unpaired surrogate in a \\u escape"),
        SyntaxCase(line: "{\"key\":\"\\udc00\"}", at: "\\udc00", reason: "unpaired surrogate in a \\u escape"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"\\ude00\\ud83d\"}", at: "\\ude00", reason: "unpaired surrogate in a \\u escape"),
        SyntaxCase(line: "{\"key\":\"\\x\"}", at: "\\x", reason: "invalid escape '\\x'"),
        SyntaxCase(line: "{\"key\":\"ab\\U0041\"}", at: "\\U", reason: "invalid escape '\\U'"),
        SyntaxCase(line: "{\"key\":\"ab\\'\"}", at: "\\'", reason: "invalid escape '\\''"),
        SyntaxCase(line: "{\"key\":\"ab\\ \"}", at: "\\ ", reason: "invalid escape '\\0x20'"),
        SyntaxCase(line: "{\"key\":\"\\u12g4\"}", at: "\\u", reason: "\\u needs four hex digits"),
        SyntaxCase(line: "{\"key\":\"\\u12\"}", at: "\\u", reason: "\\u needs four hex digits"),
        SyntaxCase(line: "{\"key\":\"\\u", at: "\\u", reason: "\\u needs four hex digits"),
        SyntaxCase(line: "{\"key\":\"\\ud83d\\uZZZZ\"}", at: "\\ud83d", reason: "\\u needs four hex digits"),
        SyntaxCase(line: "{\"key\":\"abc", at: "\"abc", reason: "unterminated string"),
        SyntaxCase(line: "{\"key", at: "\"key", reason: "unterminated string"),
        SyntaxCase(line: "{\"key\":\"a\u{01}b\"}", at: "\u{01}", reason: "control character 0x01 in a string (escape it)"),
        SyntaxCase(line: "{\"key\":\"a\tb\"}", at: "\t", reason: "control character 0x09 in a string (escape it)"),
        SyntaxCase(line: "{\"key\":\"k\",\"value\":\"line\nbreak\"}", at: "\n", reason: "control character 0x0a in a string (escape it)"),
        SyntaxCase(line: "{\"key\":\"k\",\"value\":\"0123456789\u{1f}\"}", at: "\u{1f}", reason: "control character 0x1f in a string (escape it)"),
        SyntaxCase(line: "{\"key\":\"k\",\"x\":\"\u{00}\",\"value\":\"v\"}", at: "\u{00}", reason: "control character 0x00 in a string (escape it)"),
        SyntaxCase(line: "{\"key\" \"a\"}", at: "\"a\"", reason: "expected ':' after a field name"),
        SyntaxCase(line: "{\"key\"}", at: "}", reason: "expected ':' after a field name"),
        SyntaxCase(line: "{\"key\":\"a\" \"value\":\"b\"}", at: "\"value", reason: "expected ',' or '}' after a field"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\"", at: nil, reason: "expected ',' or '}' after a field"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"timestamp\":12x}", at: "x}", reason: "expected ',' or '}' after a field"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\"} x", at: "x", reason: "unexpected text after the object"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\"}{\"key\":\"c\",\"value\":\"d\"}", at: "{", occurrence: 2, reason: "unexpected text after the object"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\"},", at: ",", occurrence: 2, reason: "unexpected text after the object"),
        SyntaxCase(line: "[\"key\",\"a\"]", at: "[", reason: "expected '{' to start an object"),
        SyntaxCase(line: "key=a", at: "k", reason: "expected '{' to start an object"),
        SyntaxCase(line: "{key:\"a\"}", at: "key", reason: "expected '\"' to start a field name"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",}", at: "}", reason: "expected '\"' to start a field name"),
        SyntaxCase(line: "{", at: nil, reason: "expected '\"' to start a field name"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"timestamp\":01}", at: "01", reason: "leading zero in a number"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"timestamp\":007}", at: "007", reason: "leading zero in a number"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":01}", at: "01", reason: "leading zero in a number"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":-01}", at: "01", reason: "leading zero in a number"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":[1,00.5]}", at: "00", reason: "leading zero in a number"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":-}", at: "-", reason: "invalid number"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":1.}", at: "1.", reason: "invalid number"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":1e}", at: "1e", reason: "invalid number"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":.5}", at: ".5", reason: "unexpected character '.'"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":+1}", at: "+1", reason: "unexpected character '+'"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":tru}", at: "tru", reason: "invalid literal"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":nul}", at: "nul", reason: "invalid literal"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":[1,]}", at: "]", reason: "unexpected character ']'"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":[1 2]}", at: "2]", reason: "expected ',' or ']' in an array"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":{\"y\" 1}}", at: "1}}", reason: "expected ':' after a field name"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":{\"y\":1 \"z\":2}}", at: "\"z", reason: "expected ',' or '}' after a field"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":", at: nil, reason: "expected a value"),
        SyntaxCase(line: "{\"key\":\"a\",\"value\":\"b\",\"x\":'s'}", at: "'", reason: "unexpected character '''"),
    ])
    func syntax(_ c: SyntaxCase) {
        let error = lineError(c.line)
        #expect(error?.reason == c.reason)
        #expect(error?.column == c.column)
        #expect(error?.message == "invalid JSON at column \(c.column): \(c.reason)")
    }

    @Test("an unterminated string is reported at its opening quote, whether or not it has escapes", arguments: [
        "{\"key\":\"abc",
        "{\"key\":\"abc\\\"}",
        "{\"key\":\"a\\nb",
        "{\"key\":\"k\",\"value\":\"0123456789\\u00e9 and more",
    ])
    func unterminatedColumn(line: String) {
        // The opening quote of the value that never ends: the last quote
        // that is not escaped, found here by hand.
        let bytes = utf8(line)
        var quote = -1
        var k = 0
        while k < bytes.count {
            if bytes[k] == UInt8(ascii: "\\") { k += 2; continue }
            if bytes[k] == UInt8(ascii: "\"") { quote = k }
            k += 1
        }
        let error = lineError(line)
        #expect(error?.reason == "unterminated string")
        #expect(error?.column == quote + 1, "the opening quote is at column \(quote + 1)")
    }

    @Test("invalid UTF-8 in a string is refused at its byte column", arguments: [
        [UInt8(0xff)], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80],
    ])
    func invalidUTF8(bad: [UInt8]) {
        // In the key, in the value after the eight-byte fast path, and in an ignored field.
        let lines: [([UInt8], Int)] = [
            (utf8("{\"key\":\"a") + bad + utf8("\",\"value\":\"v\"}"), 10),
            (utf8("{\"key\":\"k\",\"value\":\"0123456789") + bad + utf8("\"}"), 31),
            (utf8("{\"x\":\"") + bad + utf8("\",\"key\":\"k\",\"value\":\"v\"}"), 7),
            (utf8("{\"key\":\"k\",\"value\":\"\\n") + bad + utf8("\"}"), 23),
        ]
        for (line, column) in lines {
            let error = lineError(line)
            #expect(error?.reason == "invalid UTF-8 in a string")
            #expect(error?.column == column)
        }
    }

    @Test("very deep nesting is refused, not a stack overflow")
    func deepNesting() {
        let depth = 100_000
        let line = "{\"key\":\"k\",\"value\":\"v\",\"x\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        let error = lineError(line)
        #expect(error != nil)
        #expect(error?.column != nil)
    }
}

enum JSONTestsColumn {
    /// The 1-based column of the first occurrence of `needle` in `line`.
    static func find(_ needle: String, in line: String) -> Int { column(of: needle, in: line) }
}
