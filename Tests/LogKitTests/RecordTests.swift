@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

@Suite("Record encoding")
struct RecordEncodeTests {
    @Test("the reference encoder reproduces both contract vectors (sanity of the test helper)")
    func referenceSanity() {
        #expect(Reference.put("name", "ish", Vectors.putTimestamp) == Vectors.put)
        #expect(Reference.delete("name", Vectors.deleteTimestamp) == Vectors.delete)
    }

    @Test("PUT vector: byte for byte, 35 bytes, checksum 0xcff8f08d")
    func putVector() {
        let encoded = Record.encode(type: .put, key: utf8("name"), value: utf8("ish"), timestamp: 1_700_000_000_000)
        #expect(hexString(encoded) == Vectors.putHex)
        #expect(encoded.count == 35)
        #expect(Record.length(keyLength: 4, valueLength: 3) == 35)
        #expect(Array(encoded[24..<28]) == [0xcf, 0xf8, 0xf0, 0x8d])
    }

    @Test("DELETE vector: byte for byte, 32 bytes, checksum 0x2b7e11b5")
    func deleteVector() {
        let encoded = Record.encode(type: .delete, key: utf8("name"), value: [], timestamp: 1_700_000_000_001)
        #expect(hexString(encoded) == Vectors.deleteHex)
        #expect(encoded.count == 32)
        #expect(Array(encoded[24..<28]) == [0x2b, 0x7e, 0x11, 0xb5])
    }

    @Test("encode(into:) fills exactly the record and returns its checksum")
    func encodeIntoBuffer() {
        var out = [UInt8](repeating: 0xAA, count: 35)
        let checksum = utf8("name").withUnsafeBytes { k in
            utf8("ish").withUnsafeBytes { v in
                out.withUnsafeMutableBytes { o in
                    Record.encode(type: .put, key: k, value: v, timestamp: Vectors.putTimestamp, into: o)
                }
            }
        }
        #expect(checksum == 0xcff8_f08d)
        #expect(out == Vectors.put)
    }

    @Test("the checksum covers bytes 0..<24, then key and value, skipping its own field")
    func checksumDefinition() {
        #expect(Vectors.put.withUnsafeBytes { Record.checksum(of: $0) } == 0xcff8_f08d)
        #expect(Reference.crc32(Vectors.put[0..<24] + Vectors.put[28...]) == 0xcff8_f08d)
        var damagedChecksumField = Vectors.put
        damagedChecksumField[25] ^= 0xFF
        #expect(damagedChecksumField.withUnsafeBytes { Record.checksum(of: $0) } == 0xcff8_f08d)
    }

    @Test("random records encode exactly like the reference encoder")
    func randomAgainstReference() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        for _ in 0..<300 {
            let isDelete = rng.int(0...4) == 0
            let key = rng.int(0...1) == 0 ? utf8(rng.string(maxScalars: 20, minScalars: 1)) : rng.bytes(rng.int(1...40))
            let value = isDelete ? [] : rng.bytes(rng.int(0...300))
            let timestamp = rng.next()
            let encoded = Record.encode(type: isDelete ? .delete : .put, key: key, value: value, timestamp: timestamp)
            let expected = Reference.record(type: isDelete ? 2 : 1, key: key, value: value, timestamp: timestamp)
            #expect(encoded == expected)
            #expect(encoded.count == 28 + key.count + value.count)
        }
    }

    @Test("extreme timestamps are stored big-endian")
    func timestamps() {
        for ts: UInt64 in [0, 1, 0x0102_0304_0506_0708, UInt64.max] {
            let encoded = Record.encode(type: .put, key: [0x6b], value: [], timestamp: ts)
            #expect(Array(encoded[16..<24]) == bigEndian(ts))
            #expect(encoded == Reference.record(type: 1, key: [0x6b], value: [], timestamp: ts))
        }
    }
}

@Suite("Record decoding")
struct RecordDecodeTests {
    @Test("the PUT vector decodes to its fields")
    func decodePut() throws {
        let record = try parseRecord(Vectors.put).get()
        #expect(record.type == .put)
        #expect(record.key == utf8("name"))
        #expect(record.value == utf8("ish"))
        #expect(record.timestamp == 1_700_000_000_000)
        #expect(record.checksum == 0xcff8_f08d)
        #expect(record.length == 35)
        #expect(record.bytes == Vectors.put)
        let header = try parseHeader(Vectors.put).get()
        #expect(header.type == .put && header.keyLength == 4 && header.valueLength == 3)
        #expect(header.timestamp == 1_700_000_000_000 && header.checksum == 0xcff8_f08d)
        #expect(header.length == 35)
    }

    @Test("the DELETE vector decodes to its fields")
    func decodeDelete() throws {
        let record = try parseRecord(Vectors.delete).get()
        #expect(record.type == .delete)
        #expect(record.key == utf8("name"))
        #expect(record.value == [])
        #expect(record.timestamp == 1_700_000_000_001)
        #expect(record.checksum == 0x2b7e_11b5)
        #expect(record.length == 32)
        let header = try parseHeader(Vectors.delete).get()
        #expect(header.length == 32)
        #expect(header.valueLength == 0)
    }

    @Test("bytes after the record are not part of it")
    func trailingBytesIgnored() throws {
        let record = try parseRecord(Vectors.put + Vectors.delete + [1, 2, 3]).get()
        #expect(record.length == 35)
        #expect(record.bytes == Vectors.put)
        #expect(record.value == utf8("ish"))
    }

    @Test("RecordType names and raw values")
    func typeNames() {
        #expect(RecordType.put.rawValue == 1)
        #expect(RecordType.delete.rawValue == 2)
        #expect(RecordType.put.name == "put")
        #expect(RecordType.delete.name == "delete")
        #expect(RecordType(rawValue: 0) == nil)
        #expect(RecordType(rawValue: 3) == nil)
    }

    @Test("random records decode to what was encoded")
    func randomDecode() throws {
        var rng = SplitMix64(seed: 0x5EED_0002)
        for _ in 0..<200 {
            let key = utf8(rng.string(maxScalars: 16, minScalars: 1))
            let value = rng.bytes(rng.int(0...200))
            let ts = rng.next()
            let record = try parseRecord(Reference.record(type: 1, key: key, value: value, timestamp: ts)).get()
            #expect(record.key == key && record.value == value && record.timestamp == ts && record.type == .put)
        }
    }
}

@Suite("Record validation errors")
struct RecordValidationTests {
    static let maxRecord = RecordLayout.defaultMaxRecord

    @Test("incompleteHeader for every prefix of a valid header (0...27 bytes)", arguments: 0...27)
    func incompleteHeader(count: Int) {
        let expected = RecordError.incompleteHeader(available: count)
        #expect(parseHeader(Array(Vectors.put.prefix(count))).failure == expected)
        #expect(parseRecord(Array(Vectors.put.prefix(count))).failure == expected)
        #expect(parseRecord(Array(Vectors.delete.prefix(count))).failure == expected)
        #expect(expected.reason == "incomplete header: \(count) of 28 bytes")
    }

    @Test("badMagic: checked as soon as four bytes are there")
    func badMagic() {
        let text = utf8("{\"key\":\"name\",\"value\":\"ish\"}")
        #expect(parseRecord(text).failure == .badMagic(MagicBytes(utf8("{\"ke"))))
        #expect(parseHeader(Array(text.prefix(4))).failure == .badMagic(MagicBytes(utf8("{\"ke"))))
        #expect(RecordError.badMagic(MagicBytes(utf8("{\"ke"))).reason == "bad magic 0x7b226b65, expected 0x894c4f47")
        var almost = Vectors.put
        almost[3] = 0x46
        #expect(parseRecord(almost).failure == .badMagic(MagicBytes([0x89, 0x4c, 0x4f, 0x46])))
        var zeros = Vectors.put
        zeros.replaceSubrange(0..<4, with: [0, 0, 0, 0])
        #expect(parseRecord(zeros).failure == .badMagic(MagicBytes([0, 0, 0, 0])))
        #expect(RecordError.badMagic(MagicBytes([0, 0, 0, 0])).reason == "bad magic 0x00000000, expected 0x894c4f47")
    }

    @Test("badMagic: fewer than four bytes that cannot start a record are bad magic, not a short header", arguments: [
        ([UInt8(0x7b)], "0x7b"), ([0x0a], "0x0a"), ([0x89, 0x00], "0x8900"), ([0x89, 0x4c, 0x4e], "0x894c4e"), ([0x68, 0x69, 0x0a], "0x68690a"),
    ])
    func shortBadMagic(bytes: [UInt8], printed: String) {
        #expect(parseHeader(bytes).failure == .badMagic(MagicBytes(bytes)))
        #expect(parseRecord(bytes).failure == .badMagic(MagicBytes(bytes)))
        #expect(RecordError.badMagic(MagicBytes(bytes)).reason == "bad magic \(printed), expected 0x894c4f47")
    }

    @Test("unsupportedVersion", arguments: [UInt8(0), 2, 255])
    func unsupportedVersion(version: UInt8) {
        var record = Vectors.put
        record[4] = version
        #expect(parseRecord(record).failure == .unsupportedVersion(version))
        // Five bytes are enough to see it.
        #expect(parseHeader(Array(record.prefix(5))).failure == .unsupportedVersion(version))
        #expect(RecordError.unsupportedVersion(version).reason == "unsupported version \(version)")
    }

    @Test("unknownType", arguments: [UInt8(0), 3, 255])
    func unknownType(type: UInt8) {
        var record = Vectors.put
        record[5] = type
        #expect(parseRecord(record).failure == .unknownType(type))
        #expect(parseHeader(Array(record.prefix(6))).failure == .unknownType(type))
        #expect(RecordError.unknownType(type).reason == "unknown record type \(type)")
        // A record with a correct checksum is refused just the same.
        let sealed = Reference.record(type: type, key: utf8("k"), value: [], timestamp: 1)
        #expect(parseRecord(sealed, verify: false).failure == .unknownType(type))
    }

    @Test("nonZeroReserved", arguments: [(UInt8(1), "0x01"), (0x80, "0x80"), (0xff, "0xff"), (0x0a, "0x0a")])
    func nonZeroReserved(reserved: UInt8, printed: String) {
        var record = Vectors.put
        record[7] = reserved
        #expect(parseRecord(record).failure == .nonZeroReserved(reserved))
        #expect(parseHeader(Array(record.prefix(8))).failure == .nonZeroReserved(reserved))
        #expect(RecordError.nonZeroReserved(reserved).reason == "non-zero reserved byte \(printed)")
    }

    @Test("unknownFlags: every bit but continues", arguments: [(UInt8(2), "0x02"), (0x03, "0x03"), (0x80, "0x80"), (0xff, "0xff")])
    func unknownFlags(flags: UInt8, printed: String) {
        var record = Vectors.put
        record[6] = flags
        #expect(parseRecord(record).failure == .unknownFlags(flags))
        #expect(parseHeader(Array(record.prefix(7))).failure == .unknownFlags(flags))
        #expect(RecordError.unknownFlags(flags).reason == "unknown flags \(printed)")
    }

    @Test("the continues flag is read from byte 6; 0 there is a batch of one")
    func continuesFlag() throws {
        #expect(try parseHeader(Vectors.put).get().continues == false)
        var flagged = Reference.header(flags: 1, keyLength: 1, valueLength: 1)
        #expect(try parseHeader(flagged).get().continues == true)
        flagged[6] = 0
        #expect(try parseHeader(flagged).get().continues == false)
    }

    @Test("emptyKey, for a put and a delete")
    func emptyKey() {
        let put = Reference.header(type: 1, keyLength: 0, valueLength: 3) + utf8("ish")
        #expect(parseRecord(put).failure == .emptyKey)
        let delete = Reference.header(type: 2, keyLength: 0, valueLength: 0)
        #expect(parseRecord(delete).failure == .emptyKey)
        #expect(parseHeader(Array(delete.prefix(12))).failure == .emptyKey)
        #expect(RecordError.emptyKey.reason == "key length 0")
    }

    @Test("deleteWithValue")
    func deleteWithValue() {
        let record = Reference.record(type: 2, key: utf8("name"), value: utf8("ish"), timestamp: 5)
        #expect(parseRecord(record).failure == .deleteWithValue(valueLength: 3))
        #expect(parseHeader(Array(record.prefix(16))).failure == .deleteWithValue(valueLength: 3))
        #expect(RecordError.deleteWithValue(valueLength: 3).reason == "delete record with value length 3")
        #expect(RecordError.deleteWithValue(valueLength: UInt32.max).reason == "delete record with value length 4294967295")
    }

    @Test("tooLarge is decided from the header alone: 1 GiB declared, 28 bytes present")
    func tooLargeFromHeader() {
        let header = Reference.header(keyLength: 4, valueLength: 1 << 30, timestamp: 1)
        #expect(header.count == 28)
        let expected = RecordError.tooLarge(length: 1_073_741_856, limit: 64 << 20)
        #expect(parseHeader(header, maxRecord: 64 << 20).failure == expected)
        #expect(parseRecord(header, maxRecord: 64 << 20).failure == expected)
        // Even the first 16 bytes (up to the value length) are enough.
        #expect(parseHeader(Array(header.prefix(16)), maxRecord: 64 << 20).failure == expected)
        #expect(expected.reason == "record length 1073741856 exceeds the limit of 67108864 bytes (--max-record)")
    }

    @Test("tooLarge with the largest declarable lengths does not overflow")
    func tooLargeMaximal() {
        let header = Reference.header(keyLength: UInt32.max, valueLength: UInt32.max)
        #expect(parseHeader(header).failure == .tooLarge(length: 8_589_934_618, limit: RecordLayout.defaultMaxRecord))
        let keyOnly = Reference.header(type: 2, keyLength: UInt32.max, valueLength: 0)
        #expect(parseHeader(keyOnly, maxRecord: Int(UInt32.max)).failure == .tooLarge(length: 4_294_967_323, limit: Int(UInt32.max)))
    }

    @Test("the limit is inclusive: a record of exactly maxRecord bytes passes, one more fails")
    func limitBoundary() {
        #expect(parseRecord(Vectors.put, maxRecord: 35).success?.length == 35)
        #expect(parseRecord(Vectors.put, maxRecord: 34).failure == .tooLarge(length: 35, limit: 34))
        #expect(RecordError.tooLarge(length: 35, limit: 34).reason == "record length 35 exceeds the limit of 34 bytes (--max-record)")
        #expect(parseRecord(Vectors.delete, maxRecord: 32).success?.length == 32)
        #expect(parseRecord(Vectors.delete, maxRecord: 31).failure == .tooLarge(length: 32, limit: 31))
    }

    @Test("incompletePayload for every prefix past the header", arguments: 28...34)
    func incompletePayload(count: Int) {
        let expected = RecordError.incompletePayload(available: count, length: 35)
        #expect(parseRecord(Array(Vectors.put.prefix(count))).failure == expected)
        #expect(expected.reason == "incomplete record: \(count) of 35 bytes")
        // The header alone parses.
        #expect(parseHeader(Array(Vectors.put.prefix(count))).success?.length == 35)
    }

    @Test("checksumMismatch for a flipped byte in each region", arguments: [
        ("header (timestamp)", 20),
        ("header (last timestamp byte)", 23),
        ("key", 28),
        ("key (last byte)", 31),
        ("value", 32),
        ("value (last byte)", 34),
    ])
    func checksumMismatch(region: String, index: Int) {
        var record = Vectors.put
        record[index] ^= 0x01
        let computed = Reference.crc32(record[0..<24] + record[28...])
        #expect(computed != 0xcff8_f08d)
        let expected = RecordError.checksumMismatch(stored: 0xcff8_f08d, computed: computed)
        #expect(parseRecord(record).failure == expected, "\(region)")
        #expect(expected.reason == "checksum mismatch: stored 0xcff8f08d, computed \(hex8(computed))")
    }

    @Test("checksumMismatch when the checksum field itself is damaged", arguments: 24...27)
    func checksumFieldDamaged(index: Int) {
        var record = Vectors.put
        record[index] ^= 0x80
        let stored = UInt32(record[24]) << 24 | UInt32(record[25]) << 16 | UInt32(record[26]) << 8 | UInt32(record[27])
        #expect(parseRecord(record).failure == .checksumMismatch(stored: stored, computed: 0xcff8_f08d))
    }

    @Test("checksumMismatch reason prints both checksums with eight digits")
    func checksumReason() {
        #expect(RecordError.checksumMismatch(stored: 0x1, computed: 0xabc).reason
            == "checksum mismatch: stored 0x00000001, computed 0x00000abc")
    }

    @Test("keyNotUTF8, with a correct checksum", arguments: [[UInt8(0xff)], [0xc0, 0x80], [0x6e, 0xed, 0xa0, 0x80], [0x61, 0xe2, 0x82]])
    func keyNotUTF8(key: [UInt8]) {
        let record = Reference.record(type: 1, key: key, value: utf8("v"), timestamp: 9)
        #expect(parseRecord(record).failure == .keyNotUTF8)
        #expect(RecordError.keyNotUTF8.reason == "key is not valid UTF-8")
        // Without verification the record is accepted as it is.
        #expect(parseRecord(record, verify: false).success?.key == key)
    }

    @Test("verify: false skips the checksum check but not the structure checks")
    func verifyFalse() throws {
        var record = Vectors.put
        record[33] ^= 0x20
        let parsed = try parseRecord(record, verify: false).get()
        #expect(parsed.value == utf8("iSh"))
        #expect(parsed.checksum == 0xcff8_f08d)
        #expect(parseRecord(Array(record.prefix(30)), verify: false).failure == .incompletePayload(available: 30, length: 35))
        record[4] = 9
        #expect(parseRecord(record, verify: false).failure == .unsupportedVersion(9))
    }

    @Test("RecordView.verify reports the same errors as parse")
    func verifyMethod() throws {
        var record = Vectors.put
        record[30] ^= 0x04
        let computed = Reference.crc32(record[0..<24] + record[28...])
        record.withUnsafeBytes { raw in
            let view = try? RecordView.parse(raw, maxRecord: 64, verify: false)
            #expect(view != nil)
            #expect(throws: RecordError.checksumMismatch(stored: 0xcff8_f08d, computed: computed)) { try view?.verify() }
        }
        Vectors.put.withUnsafeBytes { raw in
            #expect(throws: Never.self) { try RecordView.parse(raw, maxRecord: 64, verify: false).verify() }
        }
    }

    @Test("fields are checked in the order they arrive")
    func checkOrder() {
        // bad magic wins over everything after it
        #expect(parseRecord(Reference.header(magic: 1, version: 9, type: 9, reserved: 9, keyLength: 0, valueLength: 0)).failure == .badMagic(MagicBytes([0, 0, 0, 1])))
        // version before type
        #expect(parseRecord(Reference.header(version: 9, type: 9, keyLength: 1, valueLength: 0)).failure == .unsupportedVersion(9))
        // type before flags
        #expect(parseRecord(Reference.header(type: 9, flags: 2, keyLength: 1, valueLength: 0)).failure == .unknownType(9))
        // flags before reserved
        #expect(parseRecord(Reference.header(flags: 4, reserved: 1, keyLength: 1, valueLength: 0)).failure == .unknownFlags(4))
        // reserved before key length
        #expect(parseRecord(Reference.header(reserved: 1, keyLength: 0, valueLength: 0)).failure == .nonZeroReserved(1))
        // key length before value length
        #expect(parseRecord(Reference.header(type: 2, keyLength: 0, valueLength: 5)).failure == .emptyKey)
        // a delete's value before the size limit
        #expect(parseRecord(Reference.header(type: 2, keyLength: 1, valueLength: 1 << 30)).failure == .deleteWithValue(valueLength: 1 << 30))
        // the size limit before the rest of the header
        #expect(parseRecord(Array(Reference.header(keyLength: 1, valueLength: 1 << 30).prefix(20))).failure
            == .tooLarge(length: 28 + 1 + (1 << 30), limit: RecordLayout.defaultMaxRecord))
        // checksum before key UTF-8
        var bad = Reference.record(type: 1, key: [0xff], value: [1], timestamp: 1)
        bad[28 + 1] ^= 1
        #expect({ if case .checksumMismatch = parseRecord(bad).failure { true } else { false } }())
    }

    @Test("every error has a distinct reason")
    func distinctReasons() {
        let errors: [RecordError] = [
            .incompleteHeader(available: 3), .badMagic(MagicBytes([1])), .unsupportedVersion(2), .unknownType(3),
            .unknownFlags(2), .nonZeroReserved(1), .emptyKey, .deleteWithValue(valueLength: 1), .tooLarge(length: 99, limit: 98),
            .incompletePayload(available: 30, length: 35), .checksumMismatch(stored: 1, computed: 2), .keyNotUTF8,
        ]
        #expect(Set(errors.map(\.reason)).count == errors.count)
    }

    @Test("RecordFault.message is \"offset N: reason\"")
    func faultMessage() {
        #expect(RecordFault(offset: 0, error: .emptyKey).message == "offset 0: key length 0")
        #expect(RecordFault(offset: 35, error: .incompleteHeader(available: 10)).message
            == "offset 35: incomplete header: 10 of 28 bytes")
        #expect(RecordFault(offset: UInt64.max, error: .unknownType(7)).message
            == "offset 18446744073709551615: unknown record type 7")
        #expect(RecordFault(offset: 3, error: .keyNotUTF8) == RecordFault(offset: 3, error: .keyNotUTF8))
        #expect(RecordFault(offset: 3, error: .keyNotUTF8) != RecordFault(offset: 4, error: .keyNotUTF8))
    }
}

@Suite("RecordLayout")
struct RecordLayoutTests {
    @Test("constants match the contract")
    func constants() {
        #expect(RecordLayout.headerSize == 28)
        #expect(RecordLayout.magic == 0x894c_4f47)
        #expect(RecordLayout.version == 1)
        #expect(RecordLayout.defaultMaxRecord == 64 * 1024 * 1024)
        #expect(RecordLayout.magicOffset == 0)
        #expect(RecordLayout.versionOffset == 4)
        #expect(RecordLayout.typeOffset == 5)
        #expect(RecordLayout.flagsOffset == 6)
        #expect(RecordLayout.reservedOffset == 7)
        #expect(RecordLayout.continuesFlag == 0x01)
        #expect(RecordLayout.keyLengthOffset == 8)
        #expect(RecordLayout.valueLengthOffset == 12)
        #expect(RecordLayout.timestampOffset == 16)
        #expect(RecordLayout.checksumOffset == 24)
    }

    @Test("field offsets are contiguous and widths match the contract")
    func contiguous() {
        let contract: [(offset: String, width: String, name: String)] = [
            ("0", "4", "magic"), ("4", "1", "version"), ("5", "1", "type"), ("6", "1", "flags"), ("7", "1", "reserved"),
            ("8", "4", "key length"), ("12", "4", "value length"), ("16", "8", "timestamp"),
            ("24", "4", "checksum"), ("28", "k", "key"), ("28+k", "v", "value"),
        ]
        let fields = RecordLayout.fields
        #expect(fields.count == contract.count)
        for (field, expected) in zip(fields, contract) {
            #expect(field.offset == expected.offset && field.width == expected.width && field.name == expected.name,
                    "\(field.name)")
        }
        var next = 0
        for field in fields.prefix(9) {
            #expect(Int(field.offset) == next, "\(field.name) starts where the previous field ends")
            next += Int(field.width) ?? 0
        }
        #expect(next == RecordLayout.headerSize)
    }

    @Test("table() names every field, in order, and the magic bytes")
    func table() {
        let table = RecordLayout.table()
        var rest = Substring(table)
        for name in ["magic", "version", "type", "flags", "reserved", "key length", "value length", "timestamp", "checksum", "key", "value"] {
            let cell = "| \(name) "
            guard let range = rest.firstRange(of: cell) else {
                Issue.record("table has no row for \(name) after the previous one:\n\(table)")
                return
            }
            rest = rest[range.upperBound...]
        }
        #expect(table.contains("89 4C 4F 47"))
        #expect(table.hasSuffix("\n"))
        // Header row, the alignment rule, and one row per field.
        let rows = table.split(separator: "\n").filter { $0.hasPrefix("|") }
        #expect(rows.count == 13)
        #expect(rows.allSatisfy { $0.hasSuffix("|") })
    }
}
