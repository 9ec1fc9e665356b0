// Recovery: clean segments, torn tails, damage followed by valid records,
// and the resynchronisation rule (a record's declared extent is its payload).

@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private let maxRecord = RecordLayout.defaultMaxRecord

/// The verification of `bytes` through a file (streaming first, mapping on
/// damage) and through the in-memory entry point; both must agree.
private func verify(_ bytes: [UInt8], from: UInt64 = 0, sourceLocation: SourceLocation = #_sourceLocation) throws -> Verification {
    let file = try TempFile(bytes)
    let fd = try file.open(O_RDONLY)
    defer { fd.close() }
    let streamed = try Recovery.verify(fd, size: UInt64(bytes.count), from: from, maxRecord: maxRecord)
    let mapped = bytes.withUnsafeBytes { Recovery.verify($0, from: from, maxRecord: maxRecord) }
    #expect(summary(streamed) == summary(mapped), "file and memory verifications differ", sourceLocation: sourceLocation)
    return streamed
}

private func summary(_ v: Verification) -> String {
    "from=\(v.from) valid=\(v.validRecords) end=\(v.validEnd) failure=\(v.failure.map { "\($0.offset):\($0.error)" } ?? "nil") "
        + "damaged=\(v.damaged.map { "\($0.start)-\($0.end)" }) after=\(v.recordsAfterDamage)"
}

/// The walk over `bytes` as text: `r@OFFSET` for a record, `d@START-END` for damage.
private func walk(_ bytes: [UInt8]) -> [String] {
    var events: [String] = []
    bytes.withUnsafeBytes { raw in
        Recovery.walk(raw, from: 0, maxRecord: maxRecord) { event in
            switch event {
            case .record(_, let offset): events.append("r@\(offset)")
            case .damage(let fault, let end): events.append("d@\(fault.offset)-\(end)")
            }
        }
    }
    return events
}

private func range(_ start: Int, _ end: Int) -> DamagedRange {
    DamagedRange(start: UInt64(start), end: UInt64(end))
}

/// The records of the golden case safety-resync-embedded-record: two records
/// (60 bytes), then `outer`, a PUT whose value is an encoded record (`inner`,
/// 43 bytes) followed by 20 bytes, then `c`.
private enum Embedded {
    static let head = Reference.put("a", "1", 1) + Reference.put("b", "2", 2)
    static let inner = Reference.put("inner", "innervalue", 9)
    static let outer = Reference.record(type: 1, key: utf8("outer"), value: inner + utf8(String(repeating: "z", count: 20)), timestamp: 3)
    static let c = Reference.put("c", "3", 4)
    /// Where `inner` starts inside `outer`.
    static let innerInOuter = 28 + 5
}

@Suite("Recovery")
struct RecoveryTests {
    @Test("a clean segment: every record valid, nothing damaged")
    func clean() throws {
        var image = SegmentImage()
        for n in 0..<20 { image.put("key-\(n)", String(repeating: "v", count: n * 7), UInt64(n)) }
        image.delete("key-3")
        let v = try verify(image.bytes)
        #expect(v.isClean)
        #expect(!v.isTornTail)
        #expect(v.failure == nil)
        #expect(v.validRecords == 21)
        #expect(v.validEnd == image.size)
        #expect(v.damaged.isEmpty)
        #expect(v.recordsAfterDamage == 0)
        #expect(walk(image.bytes) == image.offsets.map { "r@\($0)" })
    }

    @Test("an empty segment is clean")
    func empty() throws {
        let v = try verify([])
        #expect(v.isClean)
        #expect(v.validRecords == 0)
        #expect(v.validEnd == 0)
    }

    @Test("a last record cut at any byte is a torn tail ending at the record before it")
    func tornTailEveryCut() throws {
        var image = SegmentImage()
        image.put("a", "one")
        image.put("b", "two")
        let last = Reference.put("c", "the last record", 3)
        for cut in 1..<last.count {
            let v = try verify(image.bytes + last.prefix(cut))
            #expect(!v.isClean, "cut \(cut)")
            #expect(v.isTornTail, "cut \(cut)")
            #expect(v.validRecords == 2, "cut \(cut)")
            #expect(v.validEnd == image.size, "cut \(cut)")
            #expect(v.failure?.offset == image.size, "cut \(cut)")
            #expect(v.damaged == [range(Int(image.size), Int(image.size) + cut)], "cut \(cut)")
            #expect(v.recordsAfterDamage == 0, "cut \(cut)")
        }
    }

    @Test("a torn tail reports why: a cut header or a cut payload")
    func tornTailReasons() throws {
        let r = Reference.put("a", "1", 1)
        let cutHeader = try verify(r + Reference.put("b", "2", 2).prefix(20))
        #expect(cutHeader.failure == RecordFault(offset: UInt64(r.count), error: .incompleteHeader(available: 20)))
        let b = Reference.put("b", "22", 2)
        let cutPayload = try verify(r + b.prefix(29))
        #expect(cutPayload.failure == RecordFault(offset: UInt64(r.count), error: .incompletePayload(available: 29, length: b.count)))
    }

    @Test("a damaged record followed by valid ones is not a torn tail; the damage is that record's extent")
    func damageThenValid() throws {
        let r1 = Reference.put("a", "one", 1), r2 = Reference.put("b", "two", 2), r3 = Reference.put("c", "three", 3)
        let bytes = r1 + flipped(r2, at: r2.count - 2) + r3
        let v = try verify(bytes)
        #expect(!v.isClean)
        #expect(!v.isTornTail)
        #expect(v.validRecords == 1)
        #expect(v.validEnd == UInt64(r1.count))
        #expect(v.failure?.offset == UInt64(r1.count))
        if case .checksumMismatch = v.failure?.error {} else { Issue.record("failure: \(String(describing: v.failure))") }
        #expect(v.damaged == [range(r1.count, r1.count + r2.count)])
        #expect(v.recordsAfterDamage == 1)
        #expect(walk(bytes) == ["r@0", "d@\(r1.count)-\(r1.count + r2.count)", "r@\(r1.count + r2.count)"])
    }

    @Test("garbage between records: one damaged range up to the next record found by magic and checksum")
    func garbageBetween() throws {
        let r1 = Reference.put("a", "one", 1), r2 = Reference.put("b", "two", 2), r3 = Reference.put("c", "three", 3)
        // The garbage holds a stray magic byte and even a whole magic: neither starts a valid record.
        let garbage: [UInt8] = utf8("junk") + [0x89] + utf8("xx") + [0x89, 0x4C, 0x4F, 0x47, 1, 1] + utf8("more junk")
        let bytes = r1 + garbage + r2 + r3
        let v = try verify(bytes)
        #expect(v.failure?.offset == UInt64(r1.count))
        if case .badMagic = v.failure?.error {} else { Issue.record("failure: \(String(describing: v.failure))") }
        #expect(v.damaged == [range(r1.count, r1.count + garbage.count)])
        #expect(v.recordsAfterDamage == 2)
        #expect(!v.isTornTail)
    }

    @Test("separate damaged ranges are each reported; a torn tail after valid records is one more range")
    func severalRanges() throws {
        let r = (0..<5).map { Reference.put("k\($0)", "value \($0)", UInt64($0)) }
        let junk = utf8("0123456789")
        let bytes = r[0] + flipped(r[1], at: 30) + r[2] + junk + r[3] + r[4].prefix(20)
        let start1 = r[0].count, end1 = start1 + r[1].count
        let start2 = end1 + r[2].count, end2 = start2 + junk.count
        let start3 = end2 + r[3].count
        let v = try verify(bytes)
        #expect(v.validRecords == 1)
        #expect(v.validEnd == UInt64(start1))
        #expect(v.damaged == [range(start1, end1), range(start2, end2), range(start3, bytes.count)])
        #expect(v.recordsAfterDamage == 2)
        #expect(!v.isTornTail)
    }

    @Test("verification from an offset counts only from there")
    func fromOffset() throws {
        var image = SegmentImage()
        image.put("a", "1")
        image.put("b", "2")
        image.put("c", "3")
        let v = try verify(image.bytes + Reference.put("d", "4", 4).prefix(10), from: image.offsets[1])
        #expect(v.from == image.offsets[1])
        #expect(v.validRecords == 2)
        #expect(v.validEnd == image.size)
        #expect(v.isTornTail)
    }

    @Test("bytes past `size` (appended after it was taken) are not this verification's")
    func sizeLimit() throws {
        var image = SegmentImage()
        image.put("a", "1")
        image.put("b", "2")
        image.put("c", "3")
        let file = try TempFile(image.bytes)
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        let atBoundary = try Recovery.verify(fd, size: image.offsets[2], from: 0, maxRecord: maxRecord)
        #expect(atBoundary.isClean)
        #expect(atBoundary.validRecords == 2)
        #expect(atBoundary.validEnd == image.offsets[2])
        let midRecord = try Recovery.verify(fd, size: image.offsets[2] + 10, from: 0, maxRecord: maxRecord)
        #expect(midRecord.isTornTail)
        #expect(midRecord.validEnd == image.offsets[2])
        #expect(midRecord.damaged == [range(Int(image.offsets[2]), Int(image.offsets[2]) + 10)])
    }

    // MARK: The resynchronisation rule

    @Test("a torn record whose value holds a whole encoded record is one torn tail, never that record",
          arguments: [1, 5, 19])
    func tornRecordHoldingARecord(bytesAfterInner: Int) throws {
        let cut = Embedded.innerInOuter + Embedded.inner.count + bytesAfterInner
        #expect(cut < Embedded.outer.count)
        let bytes = Embedded.head + Embedded.outer.prefix(cut)
        let v = try verify(bytes)
        #expect(v.isTornTail)
        #expect(v.recordsAfterDamage == 0)
        #expect(v.validRecords == 2)
        #expect(v.validEnd == 60)
        #expect(v.damaged == [range(60, bytes.count)])
        #expect(walk(bytes) == ["r@0", "r@30", "d@60-\(bytes.count)"])
    }

    // When a torn record's value holds encoded records and the tear falls
    // exactly on an embedded record boundary, the embedded chain reaches the
    // end of the file, as real records after a corrupted length field would.
    // Taken for records, they would make the tail "damage followed by valid
    // records": writers would refuse to append until logfix --force, and
    // logfix --salvage would copy the embedded records out as the newest
    // records of their keys. Telling the two apart: a corrupted length
    // field leaves the damaged record verifiable with the length the chain
    // implies (the checksum covers the original header); a torn record does not.
    @Test("a torn record cut exactly at the end of its embedded record is a torn tail, never that record")
    func tornRecordCutAtEmbeddedEnd() throws {
        let cut = Embedded.innerInOuter + Embedded.inner.count
        let bytes = Embedded.head + Embedded.outer.prefix(cut)
        let v = try verify(bytes)
        #expect(v.isTornTail, "a crash that tore the append here must be truncated, not refused")
        #expect(v.recordsAfterDamage == 0)
        #expect(v.validEnd == 60)
        #expect(walk(bytes) == ["r@0", "r@30", "d@60-\(bytes.count)"], "salvage would copy `inner` as if it had been written as a record")
    }

    @Test("a torn record whose value is an encoded segment, cut at any embedded record boundary, is a torn tail")
    func tornRecordHoldingASegment() throws {
        var embedded = SegmentImage()
        for n in 0..<6 { embedded.put("key-\(n)", "stale value \(n)", UInt64(n)) }
        let outer = Reference.record(type: 1, key: utf8("backup"), value: embedded.bytes + utf8("trailer"), timestamp: 99)
        let valueStart = 28 + 6
        for boundary in embedded.offsets.dropFirst() + [embedded.size] {
            let bytes = Embedded.head + outer.prefix(valueStart + Int(boundary))
            let v = try verify(bytes)
            #expect(v.isTornTail, "cut at embedded offset \(boundary)")
            #expect(v.recordsAfterDamage == 0, "cut at embedded offset \(boundary)")
        }
    }

    @Test("a torn record cut inside its embedded record is a torn tail")
    func tornInsideEmbedded() throws {
        for cut in (Embedded.innerInOuter + 1)..<(Embedded.innerInOuter + Embedded.inner.count) {
            let v = try verify(Embedded.head + Embedded.outer.prefix(cut))
            #expect(v.isTornTail, "cut \(cut)")
            #expect(v.recordsAfterDamage == 0, "cut \(cut)")
        }
    }

    @Test("a damaged record whose value holds an encoded record is one damaged range; only the real records follow")
    func damagedRecordHoldingARecord() throws {
        // One byte of outer's key flipped: its header is intact, its checksum is not.
        let bytes = Embedded.head + flipped(Embedded.outer, at: 28) + Embedded.c
        let outerEnd = 60 + Embedded.outer.count
        let v = try verify(bytes)
        #expect(!v.isTornTail)
        #expect(v.recordsAfterDamage == 1)
        #expect(v.damaged == [range(60, outerEnd)])
        let events = walk(bytes)
        #expect(events == ["r@0", "r@30", "d@60-\(outerEnd)", "r@\(outerEnd)"])
        #expect(!events.contains("r@\(60 + Embedded.innerInOuter)"), "the embedded record is never yielded")
    }

    @Test("a damaged record whose whole value is an encoded record: the embedded record is not yielded")
    func damagedRecordWhoseValueIsARecord() throws {
        let outer = Reference.record(type: 1, key: utf8("outer"), value: Embedded.inner, timestamp: 3)
        let bytes = Embedded.head + flipped(outer, at: 20) + Embedded.c
        let outerEnd = 60 + outer.count
        #expect(walk(bytes) == ["r@0", "r@30", "d@60-\(outerEnd)", "r@\(outerEnd)"])
        let v = try verify(bytes)
        #expect(v.recordsAfterDamage == 1)
        #expect(v.damaged == [range(60, outerEnd)])
    }

    @Test("a damaged record holding several encoded records back to back stays one damaged record")
    func damagedRecordHoldingSeveral() throws {
        let embedded = Reference.put("x", "1", 1) + Reference.put("y", "2", 2) + Reference.delete("x", 3)
        let outer = Reference.record(type: 1, key: utf8("outer"), value: utf8("pre") + embedded + utf8("post"), timestamp: 3)
        let bytes = Embedded.head + flipped(outer, at: 30) + Embedded.c
        let outerEnd = 60 + outer.count
        #expect(walk(bytes) == ["r@0", "r@30", "d@60-\(outerEnd)", "r@\(outerEnd)"])
    }

    @Test("a corrupted length field does not hide the valid records after it: they are found, nothing is a torn tail")
    func corruptedLength() throws {
        let r1 = Reference.put("a", "1", 1), r2 = Reference.put("b", "2", 2)
        let r3 = Reference.put("c", "3", 3), r4 = Reference.put("d", "4", 4)
        var bad = r2
        bad[12] = 0x01  // value length 1 becomes 0x01000001: its extent runs past the end of the file
        let bytes = r1 + bad + r3 + r4
        let v = try verify(bytes)
        #expect(!v.isTornTail)
        #expect(v.recordsAfterDamage == 2)
        #expect(v.damaged == [range(r1.count, r1.count + r2.count)])
    }
}
