@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

/// The part of a line between `"value":"` and `","timestamp"`, or nil.
private func valueBody(_ line: String) -> String? {
    let bytes = utf8(line)
    let open = utf8(",\"value\":\""), close = utf8("\",\"timestamp\":")
    guard let start = (0...(bytes.count - open.count)).first(where: { Array(bytes[$0..<($0 + open.count)]) == open }),
          let end = (0...(bytes.count - close.count)).reversed().first(where: { Array(bytes[$0..<($0 + close.count)]) == close }),
          end >= start + open.count
    else { return nil }
    return String(decoding: bytes[(start + open.count)..<end], as: UTF8.self)
}

@Suite("JSON output")
struct JSONOutputTests {
    @Test("numbers print as Swift prints them at every number of digits and on both sides of each power of ten")
    func decimals() {
        var values: [UInt64] = [0, UInt64.max, UInt64.max - 1]
        var power: UInt64 = 1
        for _ in 0..<20 {
            values += [power - 1, power, power + 1, power + power / 2]
            if power > UInt64.max / 10 { break }
            power *= 10
        }
        var rng = SplitMix64(seed: 0xDEC)
        for _ in 0..<2000 { values.append(rng.next() >> UInt64(rng.int(0...63))) }
        var wrong: [String] = []
        var buffer = [UInt8](repeating: 0, count: 32)
        for value in values {
            let text = buffer.withUnsafeMutableBytes { raw in
                var p = raw.baseAddress!
                p.putDecimal(value)
                return String(decoding: UnsafeRawBufferPointer(start: raw.baseAddress, count: p - raw.baseAddress!), as: UTF8.self)
            }
            if text != String(value) { wrong.append("\(value) as \(text)") }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(5))")
    }

    @Test("short literals are put whole at every length")
    func literals() {
        let literals: [StaticString] = ["", "a", "ab", "abc", "abcd", "abcde", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghijklmnop", "abcdefghijklmnopq", "{\"key\":\""]
        for literal in literals {
            var buffer = [UInt8](repeating: 0x2E, count: 40)
            let written = buffer.withUnsafeMutableBytes { raw in
                var p = raw.baseAddress! + 1
                p.put(literal)
                return p - raw.baseAddress! - 1
            }
            let expected = [UInt8(0x2E)] + Array(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
                + [UInt8](repeating: 0x2E, count: 39 - literal.utf8CodeUnitCount)
            #expect(written == literal.utf8CodeUnitCount && buffer == expected, "\(literal)")
        }
    }

    @Test("the PUT vector prints exactly the contract's line")
    func putLine() throws {
        #expect(try jsonLine(Vectors.put)
            == "{\"offset\":0,\"length\":35,\"type\":\"put\",\"key\":\"name\",\"value\":\"ish\",\"timestamp\":1700000000000,\"checksum\":\"0xcff8f08d\"}\n")
    }

    @Test("a delete has no value field")
    func deleteLine() throws {
        #expect(try jsonLine(Vectors.delete, offset: 35)
            == "{\"offset\":35,\"length\":32,\"type\":\"delete\",\"key\":\"name\",\"timestamp\":1700000000001,\"checksum\":\"0x2b7e11b5\"}\n")
    }

    @Test("segment comes first when given, JSON-escaped")
    func segmentFirst() throws {
        #expect(try jsonLine(Vectors.put, segment: "data/segment-0001.dat")
            == "{\"segment\":\"data/segment-0001.dat\",\"offset\":0,\"length\":35,\"type\":\"put\",\"key\":\"name\",\"value\":\"ish\",\"timestamp\":1700000000000,\"checksum\":\"0xcff8f08d\"}\n")
        #expect(try jsonLine(Vectors.delete, offset: 7, segment: "a \"b\"\\c\n/é")
            == "{\"segment\":\"a \\\"b\\\"\\\\c\\n/é\",\"offset\":7,\"length\":32,\"type\":\"delete\",\"key\":\"name\",\"timestamp\":1700000000001,\"checksum\":\"0x2b7e11b5\"}\n")
    }

    @Test("includeValue false omits value and value_b64")
    func noValues() throws {
        #expect(try jsonLine(Vectors.put, includeValue: false)
            == "{\"offset\":0,\"length\":35,\"type\":\"put\",\"key\":\"name\",\"timestamp\":1700000000000,\"checksum\":\"0xcff8f08d\"}\n")
        let binary = Reference.record(type: 1, key: utf8("k"), value: [0xff, 0x00], timestamp: 3)
        #expect(try jsonLine(binary, segment: "s", includeValue: false)
            == expectedLine(segmentJSON: "s", offset: 0, length: 31, type: "put", keyJSON: "k", timestamp: 3,
                            checksum: Reference.checksum(ofRecord: binary)))
    }

    @Test("several records in one buffer, one line each")
    func severalLines() throws {
        let out = try jsonOutput([(Vectors.put, 0), (Vectors.delete, 35), (Vectors.put, 67)])
        let expected = [
            expectedLine(offset: 0, length: 35, type: "put", keyJSON: "name", valueJSON: "ish", timestamp: 1_700_000_000_000, checksum: 0xcff8_f08d),
            expectedLine(offset: 35, length: 32, type: "delete", keyJSON: "name", timestamp: 1_700_000_000_001, checksum: 0x2b7e_11b5),
            expectedLine(offset: 67, length: 35, type: "put", keyJSON: "name", valueJSON: "ish", timestamp: 1_700_000_000_000, checksum: 0xcff8_f08d),
        ].joined()
        #expect(String(decoding: out, as: UTF8.self) == expected)
    }

    @Test("numbers at their extremes; checksums keep leading zeros")
    func extremes() throws {
        let max = Reference.record(type: 1, key: utf8("k"), value: [], timestamp: UInt64.max)
        #expect(try jsonLine(max, offset: UInt64.max)
            == expectedLine(offset: UInt64.max, length: 29, type: "put", keyJSON: "k", valueJSON: "", timestamp: UInt64.max,
                            checksum: Reference.checksum(ofRecord: max)))
        #expect(try jsonLine(max, offset: UInt64.max).contains("\"offset\":18446744073709551615,"))
        // A stored checksum of 0x0000abcd (wrong, so read without verifying).
        var small = Reference.record(type: 2, key: utf8("z"), value: [], timestamp: 0)
        small.replaceSubrange(24..<28, with: [0, 0, 0xab, 0xcd])
        #expect(try jsonLine(small, verify: false)
            == "{\"offset\":0,\"length\":29,\"type\":\"delete\",\"key\":\"z\",\"timestamp\":0,\"checksum\":\"0x0000abcd\"}\n")
    }

    @Test("the short escapes: \\\" \\\\ \\b \\f \\n \\r \\t")
    func shortEscapes() throws {
        let value = "q\"b\\s\u{08}f\u{0C}n\nr\rt\t"
        let record = Reference.put("k", value, 1)
        let line = try jsonLine(record)
        #expect(valueBody(line) == "q\\\"b\\\\s\\bf\\fn\\nr\\rt\\t")
        #expect(line == expectedLine(offset: 0, length: 28 + 1 + utf8(value).count, type: "put", keyJSON: "k",
                                     valueJSON: "q\\\"b\\\\s\\bf\\fn\\nr\\rt\\t", timestamp: 1,
                                     checksum: Reference.checksum(ofRecord: record)))
    }

    @Test("every control character has its escape; the others are \\u00xx in lowercase", arguments: UInt8(0)...UInt8(0x1F))
    func controlCharacters(byte: UInt8) throws {
        let expected: String
        switch byte {
        case 0x08: expected = "\\b"
        case 0x09: expected = "\\t"
        case 0x0A: expected = "\\n"
        case 0x0C: expected = "\\f"
        case 0x0D: expected = "\\r"
        default: expected = "\\u00" + hexString([byte])
        }
        let record = Reference.record(type: 1, key: [UInt8(ascii: "k"), byte], value: [byte, UInt8(ascii: "x")], timestamp: 1)
        let line = try jsonLine(record)
        #expect(line == expectedLine(offset: 0, length: 32, type: "put", keyJSON: "k" + expected, valueJSON: expected + "x",
                                     timestamp: 1, checksum: Reference.checksum(ofRecord: record)))
        #expect(JSONText.quoted(String(decoding: [byte], as: UTF8.self)) == utf8("\"" + expected + "\""))
    }

    @Test("DEL (0x7f), '/' and other printable ASCII pass through raw")
    func printableRaw() throws {
        let printable = (0x20...0x7F).map { UInt8($0) }.filter { $0 != 0x22 && $0 != 0x5C }
        let record = Reference.record(type: 1, key: utf8("k"), value: printable, timestamp: 1)
        #expect(valueBody(try jsonLine(record)) == String(decoding: printable, as: UTF8.self))
        #expect(JSONText.quoted("a/b\u{7F}") == utf8("\"a/b\u{7F}\""))
    }

    @Test("non-ASCII UTF-8 passes through raw; length counts bytes, not characters", arguments: [
        ("é", "😀"), ("日本語", "中文"), ("ключ", "значение"), ("\u{2028}", "\u{FEFF}x\u{10FFFF}"), ("k", "aé😀日\u{7FF}\u{800}\u{FFFF}\u{10000}"),
    ])
    func nonASCII(key: String, value: String) throws {
        let record = Reference.put(key, value, 12)
        let length = 28 + utf8(key).count + utf8(value).count
        #expect(try jsonLine(record) == expectedLine(offset: 0, length: length, type: "put", keyJSON: key, valueJSON: value,
                                                     timestamp: 12, checksum: Reference.checksum(ofRecord: record)))
    }

    @Test("byte lengths: é is 2 bytes, 😀 is 4")
    func byteLengths() throws {
        let record = Record.encode(type: .put, key: utf8("é"), value: utf8("😀"), timestamp: 0)
        #expect(record.count == 34)
        #expect(try jsonLine(record).hasPrefix("{\"offset\":0,\"length\":34,\"type\":\"put\",\"key\":\"é\",\"value\":\"😀\","))
    }

    @Test("a value that is not UTF-8 is printed as value_b64 (standard base64)", arguments: [
        ([UInt8(0xff)], "/w=="),
        ([0xfb, 0xff, 0xbf], "+/+/"),
        ([0x80], "gA=="),
        ([0xc3], "ww=="),
        ([0xc3, 0xa9, 0xff], "w6n/"),
        ([0xed, 0xa0, 0x80], "7aCA"),
        ([0xc0, 0x80], "wIA="),
        ([0xf4, 0x90, 0x80, 0x80], "9JCAgA=="),
        (Array("abcdefghi".utf8) + [0xff], "YWJjZGVmZ2hp/w=="),
        (Array("0123456789abcdef".utf8) + [0xe2, 0x82], "MDEyMzQ1Njc4OWFiY2RlZuKC"),
    ])
    func binaryValue(value: [UInt8], base64: String) throws {
        #expect(Reference.base64(value) == base64, "the reference encoder agrees")
        let record = Reference.record(type: 1, key: utf8("bin"), value: value, timestamp: 77)
        #expect(try jsonLine(record) == expectedLine(offset: 0, length: 31 + value.count, type: "put", keyJSON: "bin",
                                                     valueB64: base64, timestamp: 77, checksum: Reference.checksum(ofRecord: record)))
    }

    @Test("random strings are escaped exactly as RFC 8259 asks")
    func randomStrings() throws {
        var rng = SplitMix64(seed: 0x1502)
        var records: [([UInt8], UInt64)] = []
        var expected = ""
        var offset: UInt64 = 0
        for _ in 0..<200 {
            let key = rng.string(maxScalars: 12, minScalars: 1)
            let value = rng.string(maxScalars: 40)
            let ts = rng.next()
            let record = Reference.put(key, value, ts)
            records.append((record, offset))
            expected += expectedLine(offset: offset, length: record.count, type: "put", keyJSON: Reference.jsonEscaped(key),
                                     valueJSON: Reference.jsonEscaped(value), timestamp: ts,
                                     checksum: Reference.checksum(ofRecord: record))
            offset += UInt64(record.count)
            #expect(JSONText.quoted(key) == utf8("\"" + Reference.jsonEscaped(key) + "\""))
        }
        #expect(String(decoding: try jsonOutput(records), as: UTF8.self) == expected)
    }

    @Test("random binary values: value when UTF-8, else value_b64")
    func randomBinary() throws {
        var rng = SplitMix64(seed: 0xB1)
        for _ in 0..<200 {
            let value = rng.bytes(rng.int(0...50))
            let record = Reference.record(type: 1, key: utf8("k"), value: value, timestamp: 5)
            let checksum = Reference.checksum(ofRecord: record)
            let expected = Reference.isUTF8(value)
                ? expectedLine(offset: 0, length: record.count, type: "put", keyJSON: "k",
                               valueJSON: Reference.jsonEscaped(String(decoding: value, as: UTF8.self)), timestamp: 5, checksum: checksum)
                : expectedLine(offset: 0, length: record.count, type: "put", keyJSON: "k",
                               valueB64: Reference.base64(value), timestamp: 5, checksum: checksum)
            #expect(try jsonLine(record) == expected)
        }
    }

    @Test("an unverified key that is not UTF-8 prints U+FFFD for each bad byte")
    func lossyKey() throws {
        let record = Reference.record(type: 2, key: [0x61, 0xff, 0x62, 0xc3], value: [], timestamp: 1)
        #expect(try jsonLine(record, verify: false) == expectedLine(
            offset: 0, length: 32, type: "delete", keyJSON: "a\u{FFFD}b\u{FFFD}", timestamp: 1,
            checksum: Reference.checksum(ofRecord: record)))
    }

    @Test("records larger than the output buffer are written whole, in order")
    func largerThanBuffer() throws {
        var rng = SplitMix64(seed: 0xB16)
        let bigText = String(repeating: "x\"y\u{01}é", count: 2000)
        let big = Reference.put("big", bigText, 4)
        let binary = Reference.record(type: 1, key: utf8("bin"), value: [0xff] + rng.bytes(5000), timestamp: 5)
        let inputs: [([UInt8], UInt64)] = [(Vectors.put, 0), (big, 35), (binary, 35 + UInt64(big.count)), (Vectors.delete, 1)]
        let expected = [
            expectedLine(offset: 0, length: 35, type: "put", keyJSON: "name", valueJSON: "ish", timestamp: 1_700_000_000_000, checksum: 0xcff8_f08d),
            expectedLine(offset: 35, length: big.count, type: "put", keyJSON: "big", valueJSON: Reference.jsonEscaped(bigText),
                         timestamp: 4, checksum: Reference.checksum(ofRecord: big)),
            expectedLine(offset: 35 + UInt64(big.count), length: binary.count, type: "put", keyJSON: "bin",
                         valueB64: Reference.base64(Array(binary[31...])), timestamp: 5, checksum: Reference.checksum(ofRecord: binary)),
            expectedLine(offset: 1, length: 32, type: "delete", keyJSON: "name", timestamp: 1_700_000_000_001, checksum: 0x2b7e_11b5),
        ].joined()
        for capacity in [64, 300, 1 << 20] {
            #expect(String(decoding: try jsonOutput(inputs, bufferCapacity: capacity), as: UTF8.self) == expected,
                    "buffer capacity \(capacity)")
        }
    }

    @Test("JSONText.quoted")
    func quoted() {
        #expect(JSONText.quoted("") == utf8("\"\""))
        #expect(JSONText.quoted("data/segment-0001.dat") == utf8("\"data/segment-0001.dat\""))
        #expect(JSONText.quoted("say \"hi\"\\\n") == utf8("\"say \\\"hi\\\"\\\\\\n\""))
        #expect(JSONText.quoted("\u{00}\u{1f}\u{7f}") == utf8("\"\\u0000\\u001f\u{7f}\""))
        #expect(JSONText.quoted("é😀日") == utf8("\"é😀日\""))
        // Long enough for the eight-bytes-at-a-time path, with a special byte at every position.
        for position in 0..<24 {
            var chars = Array(repeating: Character("a"), count: 24)
            chars[position] = "\""
            let text = String(chars)
            #expect(JSONText.quoted(text) == utf8("\"" + Reference.jsonEscaped(text) + "\""), "quote at \(position)")
        }
    }
}
