@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

/// encode -> JSON line -> parse -> encode, for one record.
private func roundTrip(_ record: [UInt8], parser: RecordLineParser) throws -> (line: String, reencoded: [UInt8]?) {
    var line = try jsonOutput([(record, 0)])
    #expect(line.last == 0x0A, "a line ends with a newline")
    line.removeLast()
    #expect(!line.contains(0x0A), "one line per record")
    let parsed = parseLine(line, parser: parser)
    guard case .success(let input?) = parsed else {
        Issue.record("line did not parse back: \(String(describing: parsed.failure?.message))")
        return (String(decoding: line, as: UTF8.self), nil)
    }
    guard let timestamp = input.timestamp else {
        Issue.record("the line lost its timestamp")
        return (String(decoding: line, as: UTF8.self), nil)
    }
    let reencoded = Record.encode(type: input.type, key: input.key, value: input.value, timestamp: timestamp)
    return (String(decoding: line, as: UTF8.self), reencoded)
}

@Suite("Round trip: record -> JSON line -> record")
struct RoundTripTests {
    @Test("the contract vectors round-trip byte for byte")
    func vectors() throws {
        let parser = RecordLineParser()
        #expect(try roundTrip(Vectors.put, parser: parser).reencoded == Vectors.put)
        #expect(try roundTrip(Vectors.delete, parser: parser).reencoded == Vectors.delete)
    }

    @Test("400 seeded pseudo-random records round-trip byte for byte")
    func randomRecords() throws {
        var rng = SplitMix64(seed: 0x0DDB_A11)
        let parser = RecordLineParser()
        var binaryValues = 0
        for index in 0..<400 {
            let type: RecordType = rng.int(0...5) == 0 ? .delete : .put
            let key: [UInt8]
            switch rng.int(0...3) {
            case 0: key = utf8(rng.string(maxScalars: 3, minScalars: 1))
            case 1: key = utf8(rng.string(maxScalars: 60, minScalars: 1))
            case 2: key = [UInt8(rng.int(0...0x7F))]
            default: key = utf8("user-\(rng.next())")
            }
            var value: [UInt8] = []
            if type == .put {
                switch rng.int(0...4) {
                case 0: value = rng.bytes(rng.int(0...64))  // arbitrary binary, usually not UTF-8
                case 1: value = rng.bytes(rng.int(0...3))
                case 2: value = utf8(rng.string(maxScalars: 200))
                case 3: value = Array(repeating: UInt8(rng.int(0...255)), count: rng.int(0...30))
                default: value = utf8(rng.string(maxScalars: 10))
                }
            }
            let timestamp = rng.int(0...3) == 0 ? [0, UInt64.max, 1_700_000_000_000][rng.int(0...2)] : rng.next()
            let record = Record.encode(type: type, key: key, value: value, timestamp: timestamp)
            if !Reference.isUTF8(value) { binaryValues += 1 }
            let (line, reencoded) = try roundTrip(record, parser: parser)
            #expect(reencoded == record, "record \(index): \(line)")
        }
        #expect(binaryValues > 40, "the generator produced binary values")
    }

    @Test("every single-byte value round-trips")
    func everyByte() throws {
        let parser = RecordLineParser()
        for byte in 0...255 {
            let record = Record.encode(type: .put, key: [UInt8(byte & 0x7F) | 0x01], value: [UInt8(byte)], timestamp: UInt64(byte))
            #expect(try roundTrip(record, parser: parser).reencoded == record, "byte \(byte)")
        }
    }

    @Test("a scan line with a segment reads back to the same record")
    func withSegment() throws {
        let record = Record.encode(type: .put, key: utf8("k\"é"), value: [0, 1, 0xff], timestamp: 9)
        var line = try jsonOutput([(record, 123)], segment: "data/segment \"1\".dat")
        line.removeLast()
        let parsed = try #require(parseLine(line).success ?? nil)
        #expect(Record.encode(type: parsed.type, key: parsed.key, value: parsed.value, timestamp: try #require(parsed.timestamp)) == record)
    }
}
