@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A deterministic stream of records with mixed sizes and types, and the
/// offset each one starts at.
private func mixedStream(count: Int, seed: UInt64, maxValue: Int = 3000) -> (data: [UInt8], records: [(offset: UInt64, bytes: [UInt8])]) {
    var rng = SplitMix64(seed: seed)
    var data: [UInt8] = []
    var records: [(UInt64, [UInt8])] = []
    for index in 0..<count {
        let key = utf8("key-\(index)-" + rng.string(maxScalars: 6))
        let record: [UInt8]
        switch rng.int(0...9) {
        case 0: record = Reference.record(type: 2, key: key, value: [], timestamp: rng.next())
        case 1: record = Reference.record(type: 1, key: key, value: [], timestamp: rng.next())
        case 2: record = Reference.record(type: 1, key: key, value: rng.bytes(rng.int(0...maxValue)), timestamp: rng.next())
        default: record = Reference.record(type: 1, key: key, value: rng.bytes(rng.int(0...40)), timestamp: rng.next())
        }
        records.append((UInt64(data.count), record))
        data += record
    }
    return (data, records)
}

private func expectSameRecords(
    _ result: ReadResult, _ expected: [(offset: UInt64, bytes: [UInt8])], startOffset: UInt64 = 0,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(result.records.count == expected.count, sourceLocation: sourceLocation)
    for (got, want) in zip(result.records, expected) {
        guard got.offset == want.offset + startOffset, got.record.bytes == want.bytes else {
            Issue.record("record at \(want.offset): got offset \(got.offset), \(got.record)", sourceLocation: sourceLocation)
            return
        }
    }
}

@Suite("RecordReader")
struct RecordReaderTests {
    @Test("many mixed records through a pipe: every record, with its absolute offset", arguments: [64, 4096, 1 << 20])
    func mixedThroughPipe(chunk: Int) throws {
        let (data, records) = mixedStream(count: 400, seed: 0xFEED, maxValue: 5000)
        #expect(data.count > 65_536, "more than a pipe buffer, so reads and writes interleave")
        let result = try withPipe(feeding: data, piece: 5000) { try readRecords(from: $0, chunk: chunk) }
        #expect(result.fault == nil)
        expectSameRecords(result, records)
        // Fields as well as bytes.
        if let first = result.records.first {
            #expect(first.record.key.starts(with: utf8("key-0-")))
        }
    }

    @Test("many mixed records from a file")
    func mixedFromFile() throws {
        let (data, records) = mixedStream(count: 300, seed: 0xF11E)
        for chunk in [1, 16, 64, 100, 1000, 1 << 20] {
            let result = try readRecords(file: data, chunk: chunk)
            #expect(result.fault == nil, "chunk \(chunk)")
            expectSameRecords(result, records)
        }
    }

    @Test("records split across small pipe writes at awkward boundaries")
    func splitAcrossReads() throws {
        let (data, records) = mixedStream(count: 30, seed: 0x5917, maxValue: 200)
        for piece in [1, 7, 27, 29] {
            // A pause between writes makes the reader see each piece on its own.
            let pause: UInt32 = piece == 1 ? 0 : 300
            let result = try withPipe(feeding: data, piece: piece, pauseMicroseconds: pause) {
                try readRecords(from: $0, chunk: 64)
            }
            #expect(result.fault == nil, "piece \(piece)")
            expectSameRecords(result, records)
        }
    }

    @Test("a record larger than the reader's chunk is read whole", arguments: [64, 100, 4096])
    func largerThanChunk(chunk: Int) throws {
        var rng = SplitMix64(seed: 99)
        let big = Reference.record(type: 1, key: utf8("big"), value: rng.bytes(50_000), timestamp: 1)
        let small = Vectors.put
        let data = small + big + small + big + Vectors.delete
        let expected: [(UInt64, [UInt8])] = [
            (0, small), (35, big), (UInt64(35 + big.count), small), (UInt64(70 + big.count), big),
            (UInt64(70 + 2 * big.count), Vectors.delete),
        ]
        let fromFile = try readRecords(file: data, chunk: chunk)
        #expect(fromFile.fault == nil)
        expectSameRecords(fromFile, expected)
        let fromPipe = try withPipe(feeding: data, piece: 1000) { try readRecords(from: $0, chunk: chunk) }
        #expect(fromPipe.fault == nil)
        expectSameRecords(fromPipe, expected)
    }

    @Test("empty input: no records, no fault")
    func emptyInput() throws {
        let result = try readRecords(file: [])
        #expect(result.records.isEmpty)
        #expect(result.fault == nil)
        let piped = try withPipe(feeding: []) { try readRecords(from: $0) }
        #expect(piped.records.isEmpty && piped.fault == nil)
    }

    @Test("a truncated header at the end is incompleteHeader at its offset", arguments: [1, 3, 4, 10, 27])
    func truncatedHeader(tail: Int) throws {
        let data = Vectors.put + Vectors.delete + Vectors.put.prefix(tail)
        for chunk in [64, 1 << 20] {
            let result = try readRecords(file: data, chunk: chunk)
            #expect(result.records.map(\.offset) == [0, 35])
            #expect(result.fault == RecordFault(offset: 67, error: .incompleteHeader(available: tail)))
        }
    }

    @Test("a truncated payload at the end is incompletePayload at its offset", arguments: [28, 30, 34])
    func truncatedPayload(tail: Int) throws {
        let data = Vectors.delete + Vectors.put + Vectors.put.prefix(tail)
        for chunk in [64, 1 << 20] {
            let result = try readRecords(file: data, chunk: chunk)
            #expect(result.records.map(\.offset) == [0, 32])
            #expect(result.fault == RecordFault(offset: 67, error: .incompletePayload(available: tail, length: 35)))
            #expect(result.fault?.message == "offset 67: incomplete record: \(tail) of 35 bytes")
        }
        let piped = try withPipe(feeding: data, piece: 3, pauseMicroseconds: 100) { try readRecords(from: $0, chunk: 64) }
        #expect(piped.fault == RecordFault(offset: 67, error: .incompletePayload(available: tail, length: 35)))
    }

    @Test("a large record cut short is incompletePayload with its full declared length")
    func truncatedLargePayload() throws {
        var rng = SplitMix64(seed: 5)
        let big = Reference.record(type: 1, key: utf8("big"), value: rng.bytes(10_000), timestamp: 1)
        let data = Vectors.put + big.prefix(5_000)
        let result = try readRecords(file: data, chunk: 64)
        #expect(result.records.count == 1)
        #expect(result.fault == RecordFault(offset: 35, error: .incompletePayload(available: 5_000, length: big.count)))
    }

    @Test("trailing text is badMagic at its offset")
    func trailingGarbage() throws {
        let data = Vectors.put + Vectors.put + utf8("hello, this is not a record at all\n")
        let result = try readRecords(file: data, chunk: 64)
        #expect(result.records.map(\.offset) == [0, 35])
        #expect(result.fault == RecordFault(offset: 70, error: .badMagic(MagicBytes(utf8("hell")))))
        #expect(result.fault?.message == "offset 70: bad magic 0x68656c6c, expected 0x894c4f47")
    }

    @Test("bad magic is reported with its four bytes wherever the reads happen to split the input", arguments: [36, 37, 38, 64, 1 << 20])
    func badMagicAcrossReads(chunk: Int) throws {
        // With chunk 36, the first read ends one byte into the text.
        let data = Vectors.put + utf8("hello, this is not a record at all\n")
        let result = try readRecords(file: data, chunk: chunk)
        #expect(result.records.map(\.offset) == [0])
        #expect(result.fault == RecordFault(offset: 35, error: .badMagic(MagicBytes(utf8("hell")))))
        #expect(result.fault?.message == "offset 35: bad magic 0x68656c6c, expected 0x894c4f47")
    }

    @Test("a short text tail is badMagic, not an incomplete header")
    func shortGarbage() throws {
        let result = try readRecords(file: Vectors.put + utf8("ok"), chunk: 64)
        #expect(result.records.map(\.offset) == [0])
        #expect(result.fault == RecordFault(offset: 35, error: .badMagic(MagicBytes(utf8("ok")))))
    }

    @Test("a damaged record in the middle stops the stream there; the records before it were delivered")
    func damageInMiddle() throws {
        var damaged = Vectors.put
        damaged[33] ^= 0xFF
        let computed = Reference.checksum(ofRecord: damaged)
        let data = Vectors.delete + Vectors.put + damaged + Vectors.put
        let result = try readRecords(file: data, chunk: 64)
        #expect(result.records.map(\.offset) == [0, 32])
        #expect(result.fault == RecordFault(offset: 67, error: .checksumMismatch(stored: 0xcff8_f08d, computed: computed)))
        // Without verification, all four come through.
        let unverified = try readRecords(file: data, verify: false, chunk: 64)
        #expect(unverified.fault == nil)
        #expect(unverified.records.map(\.offset) == [0, 32, 67, 102])
    }

    @Test("a non-UTF-8 key is a fault only when verifying")
    func keyNotUTF8() throws {
        let bad = Reference.record(type: 1, key: [0xfe], value: [], timestamp: 1)
        let data = Vectors.put + bad
        #expect(try readRecords(file: data).fault == RecordFault(offset: 35, error: .keyNotUTF8))
        #expect(try readRecords(file: data, verify: false).records.count == 2)
    }

    @Test("a header declaring more than maxRecord is tooLarge before anything is read for it")
    func tooLarge() throws {
        let huge = Reference.header(keyLength: 4, valueLength: 1 << 30, timestamp: 1)
        let data = Vectors.put + huge + utf8("name")
        let result = try readRecords(file: data, maxRecord: 1 << 20, chunk: 64)
        #expect(result.records.count == 1)
        #expect(result.fault == RecordFault(offset: 35, error: .tooLarge(length: 1_073_741_856, limit: 1 << 20)))
    }

    @Test("startOffset is added to every offset and to the fault's")
    func startOffset() throws {
        let (data, records) = mixedStream(count: 50, seed: 0x0FF5)
        let start: UInt64 = 1_000_000
        let result = try readRecords(file: data + [0x89, 0x4c], startOffset: start, chunk: 128)
        expectSameRecords(result, records, startOffset: start)
        #expect(result.fault == RecordFault(offset: start + UInt64(data.count), error: .incompleteHeader(available: 2)))
    }

    @Test("an error thrown by the body stops the stream and propagates")
    func bodyThrows() throws {
        struct Stop: Error {}
        let file = try TempFile(Vectors.put + Vectors.put + Vectors.put)
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        var seen: [UInt64] = []
        let reader = RecordReader(source: fd, maxRecord: 1024, chunk: 64)
        #expect(throws: Stop.self) {
            try reader.forEach { _, offset in
                seen.append(offset)
                if offset == 35 { throw Stop() }
            }
        }
        #expect(seen == [0, 35])
    }

    @Test("a read error is a SystemError naming the source")
    func readError() throws {
        let file = try TempFile(Vectors.put)
        let writeOnly = try file.open(O_WRONLY)
        defer { writeOnly.close() }
        let reader = RecordReader(source: writeOnly, maxRecord: 1024)
        let error = #expect(throws: SystemError.self) { try reader.forEach { _, _ in } }
        #expect(error?.errno == EBADF)
        #expect(error?.operation == "read")
        #expect(error?.path == file.path)
    }
}
