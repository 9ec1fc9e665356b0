// The parallel verification of a segment must be indistinguishable from the
// sequential one: the same counts, the same last record, the same first
// fault. Generated segments with damage at random places, verified with
// chunks small enough that every segment spans many of them.

@testable import LogFormat
@testable import LogIO
@testable import LogStore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private let maxRecord = 1 << 16

/// Counts and first fault, as text: easy to compare and to read in a failure.
private func outcome(_ tally: RecordTally, _ fault: RecordFault?) -> String {
    let last = tally.last.map { "\($0.offset)+\($0.length) \(hex8($0.checksum))" } ?? "none"
    return "records \(tally.records) puts \(tally.puts) deletes \(tally.deletes) bytes \(tally.bytes) last \(last) fault \(fault?.message ?? "none")"
}

private func sequential(_ fd: FileDescriptor, size: UInt64, from: UInt64) throws -> String {
    var tally = RecordTally()
    do {
        try fd.scanRecords(from: from, size: size, maxRecord: maxRecord, verify: true, progress: nil) { tally.add($0, at: $1) }
    } catch let fault as RecordFault {
        return outcome(tally, fault)
    }
    return outcome(tally, nil)
}

private func parallel(_ fd: FileDescriptor, size: UInt64, from: UInt64, chunkSize: Int) throws -> String {
    var tally = RecordTally()
    do {
        try fd.tally(from: from, size: size, maxRecord: maxRecord, progress: nil, chunkSize: chunkSize, into: &tally)
    } catch let fault as RecordFault {
        return outcome(tally, fault)
    }
    return outcome(tally, nil)
}

/// Records with keys of 1 to 40 bytes (some not ASCII), values up to a few
/// hundred bytes (now and then a few thousand, more than a small chunk),
/// deletes, and batches of up to five records. Returns the bytes and each
/// record's extent.
private func segment(_ rng: inout SplitMix64, records: Int) -> (bytes: [UInt8], extents: [Range<Int>]) {
    var bytes: [UInt8] = []
    var extents: [Range<Int>] = []
    var batchLeft = 0
    for n in 0..<records {
        if batchLeft == 0 && rng.int(0...5) == 0 { batchLeft = rng.int(1...4) }
        let continues = batchLeft > 0 && n + 1 < records
        if batchLeft > 0 { batchLeft -= 1 }
        var key = Array("k\(rng.next() % 100_000)".utf8)
        if rng.int(0...7) == 0 { key += Array("é€😀".utf8) }
        key += Array(repeating: UInt8(ascii: "x"), count: rng.int(0...30))
        let delete = rng.int(0...9) == 0
        let valueLength = delete ? 0 : rng.int(0...19) == 0 ? rng.int(2000...6000) : rng.int(0...300)
        let record = Record.encode(
            type: delete ? .delete : .put, key: key, value: rng.bytes(valueLength), timestamp: rng.next() >> 20,
            continues: continues)
        extents.append(bytes.count..<(bytes.count + record.count))
        bytes += record
    }
    return (bytes, extents)
}

/// Damages `bytes` in one of the ways a disk or a crash does.
private func damage(_ bytes: inout [UInt8], extents: [Range<Int>], _ rng: inout SplitMix64) -> String {
    let extent = extents[rng.int(0...(extents.count - 1))]
    func flip(_ at: Int) { bytes[at] ^= UInt8(1) << UInt8(rng.int(0...7)) }
    switch rng.int(0...8) {
    case 0: return "clean"
    case 1:
        flip(rng.int(0...(bytes.count - 1)))
        return "bit flip anywhere"
    case 2:
        flip(extent.lowerBound + rng.int(0...(RecordLayout.checksumOffset - 1)))
        return "bit flip in a header"
    case 3:
        flip(extent.lowerBound + RecordLayout.checksumOffset + rng.int(0...3))
        return "bit flip in a checksum"
    case 4:
        let keyLength = Int(bytes[extent.lowerBound + RecordLayout.keyLengthOffset + 3])
        flip(extent.lowerBound + RecordLayout.headerSize + rng.int(0...(keyLength - 1)))
        return "bit flip in a key"
    case 5:
        guard extent.count > RecordLayout.headerSize + 40 else { fallthrough }
        flip(rng.int((extent.upperBound - 10)...(extent.upperBound - 1)))
        return "bit flip at the end of a value"
    case 6:
        // A key that is not UTF-8, under a checksum that matches it.
        bytes[extent.lowerBound + RecordLayout.headerSize] = 0xFF
        bytes.withUnsafeMutableBytes { _ = Record.seal(UnsafeMutableRawBufferPointer(rebasing: $0[extent])) }
        return "key not UTF-8"
    case 7:
        bytes.removeLast(rng.int(1...min(bytes.count - 1, 9000)))
        return "truncated"
    default:
        // A batch torn at the end: its records keep the continues flag and
        // nothing ends it.
        let torn = extents.suffix(rng.int(1...3))
        bytes.withUnsafeMutableBytes { all in
            for extent in torn { _ = Record.setContinues(true, UnsafeMutableRawBufferPointer(rebasing: all[extent])) }
        }
        return "torn batch"
    }
}

@Suite("Parallel verification")
struct ParallelVerifyTests {
    @Test("parallel and sequential verification agree on damaged segments of every kind", arguments: 0..<40)
    func agreesWithSequential(seed: UInt64) throws {
        var rng = SplitMix64(seed: 0x5EED_0000 + seed)
        for _ in 0..<10 {
            var (bytes, extents) = segment(&rng, records: rng.int(1...300))
            let kind = damage(&bytes, extents: extents, &rng)
            let file = try TempFile(bytes)
            let fd = try file.open(O_RDONLY)
            defer { fd.close() }
            let size = UInt64(bytes.count)
            let from = rng.int(0...3) == 0 ? UInt64(extents[rng.int(0...(extents.count - 1))].lowerBound) : 0
            let expected = try sequential(fd, size: size, from: min(from, size))
            for chunkSize in [256, 4096, 1 << 16] {
                let got = try parallel(fd, size: size, from: min(from, size), chunkSize: chunkSize)
                #expect(got == expected, "\(kind), from \(from), chunks of \(chunkSize)")
            }
        }
    }

    @Test("an index build verifying on a second thread fails exactly where a verified scan does", arguments: 0..<6)
    func indexBuildAgreesWithScan(seed: UInt64) throws {
        var rng = SplitMix64(seed: 0x1D3_0000 + seed)
        // Large values, so that a segment past the size that turns the
        // second thread on takes few records to generate.
        var bytes: [UInt8] = []
        var extents: [Range<Int>] = []
        while bytes.count < Int(ParallelVerifier.minimumSize) + (1 << 20) {
            let record = Record.encode(
                type: .put, key: Array("k\(rng.next() % 1000)".utf8), value: rng.bytes(rng.int(2000...4000)),
                timestamp: rng.next() >> 20, continues: false)
            extents.append(bytes.count..<(bytes.count + record.count))
            bytes += record
        }
        let kind = damage(&bytes, extents: extents, &rng)
        let file = try TempFile(bytes)
        func failure(_ body: () throws -> Void) -> String {
            do { try body() } catch let fault as SegmentFault { return fault.message } catch { return "\(error)" }
            return "none"
        }
        let scanned = failure { try SegmentReader(path: file.path).scan(maxRecord: maxRecord, verify: true, progress: nil) { _, _ in } }
        let builder = IndexBuilder()
        let built = failure { try builder.addSegment(try SegmentReader(path: file.path), maxRecord: maxRecord) }
        #expect(built == scanned, "\(kind)")
        if scanned == "none" { #expect(builder.segments.last?.lastOffset == UInt64(extents.last!.lowerBound), "\(kind)") }
    }

    @Test("a clean segment is counted whole, its last record the file's last")
    func clean() throws {
        var rng = SplitMix64(seed: 7)
        let (bytes, extents) = segment(&rng, records: 500)
        let file = try TempFile(bytes)
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        var tally = RecordTally()
        try fd.tally(from: 0, size: UInt64(bytes.count), maxRecord: maxRecord, progress: nil, chunkSize: 1024, into: &tally)
        #expect(tally.records == 500)
        #expect(tally.bytes == UInt64(bytes.count))
        #expect(tally.last.map { Int($0.offset) } == extents.last?.lowerBound)
    }
}
