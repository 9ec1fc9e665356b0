// Compaction: the latest PUT of each key survives, in original order;
// tombstones and overwritten records go. Includes the regression for keys
// whose 32-bit hashes collide.

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

/// Compacts `bytes` in memory; returns the output and the report.
private func compact(_ bytes: [UInt8], path: String = "seg") throws -> ([UInt8], CompactionReport) {
    let out = ByteBuffer()
    let report = try bytes.withUnsafeBytes { try Compaction.writeLive($0, path: path, maxRecord: maxRecord, to: out) }
    return (Array(out.bytes), report)
}

/// The hash compaction sorts keys by, for a key given as text.
private func keyHash(_ key: String) -> UInt32 {
    Array(key.utf8).withUnsafeBytes { KeyHash.hash($0) }
}

/// What compaction must keep, computed the obvious way: the last record of
/// each key, if it is a PUT, in original order.
private func modelLive(_ image: SegmentImage) -> [[UInt8]] {
    var last: [[UInt8]: Int] = [:]
    for (n, record) in image.records.enumerated() {
        let keyLength = Int(UInt32(bigEndian: record[8..<12].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        last[Array(record[28..<(28 + keyLength)])] = n
    }
    return image.records.enumerated().filter { n, record in
        let keyLength = Int(UInt32(bigEndian: record[8..<12].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        return last[Array(record[28..<(28 + keyLength)])] == n && record[5] == 1
    }.map(\.element)
}

@Suite("Compaction")
struct CompactionTests {
    @Test("writeLive keeps the latest PUT per key in original order and drops tombstones and overwritten records")
    func latestPutsInOrder() throws {
        var image = SegmentImage()
        image.put("a", "a1", 1)       // 0 overwritten
        image.put("b", "b1", 2)       // 1 overwritten (by the delete)
        image.put("a", "a2", 3)       // 2 overwritten
        image.delete("b", 4)          // 3 live tombstone: dropped
        image.put("c", "c1", 5)       // 4 kept
        image.put("d", "d1", 6)       // 5 overwritten
        image.delete("d", 7)          // 6 overwritten tombstone
        image.put("d", "d2", 8)       // 7 kept
        image.delete("e", 9)          // 8 tombstone of a key never put: dropped
        image.put("a", "a3", 10)      // 9 kept
        let (out, report) = try compact(image.bytes)
        #expect(out == image.records[4] + image.records[7] + image.records[9])
        #expect(listRecords(out).map { "\($0.key)=\($0.value)" } == ["c=c1", "d=d2", "a=a3"])
        #expect(report.recordsRead == 10)
        #expect(report.recordsWritten == 3)
        #expect(report.droppedOverwritten == 4)
        #expect(report.droppedTombstones == 3)
        #expect(report.beforeSize == image.size)
        #expect(report.afterSize == UInt64(out.count))
        #expect(report.json.hasPrefix("{\"before_size\":\(image.size),\"after_size\":\(out.count),\"records_read\":10,\"records_written\":3,\"dropped_tombstones\":3,\"dropped_overwritten\":4,"))
    }

    @Test("an empty segment compacts to nothing")
    func empty() throws {
        let (out, report) = try compact([])
        #expect(out.isEmpty)
        #expect(report.recordsRead == 0)
        #expect(report.recordsWritten == 0)
    }

    @Test("a segment with nothing to drop is copied unchanged")
    func nothingToDrop() throws {
        var image = SegmentImage()
        for n in 0..<50 { image.put("key-\(n)", String(repeating: "x", count: n), UInt64(n)) }
        let (out, report) = try compact(image.bytes)
        #expect(out == image.bytes)
        #expect(report.droppedOverwritten == 0)
        #expect(report.droppedTombstones == 0)
    }

    @Test("a damaged segment is a SegmentFault at the damage, and nothing is written")
    func damaged() throws {
        var image = SegmentImage()
        image.put("a", "1")
        image.put("b", "2")
        let bad = flipped(Reference.put("c", "3", 3), at: 29)
        let out = ByteBuffer()
        let bytes = image.bytes + bad + Reference.put("d", "4", 4)
        do {
            _ = try bytes.withUnsafeBytes { try Compaction.writeLive($0, path: "the-seg", maxRecord: maxRecord, to: out) }
            Issue.record("compacted a damaged segment")
        } catch let fault as SegmentFault {
            #expect(fault.path == "the-seg")
            #expect(fault.fault.offset == image.size)
            if case .checksumMismatch = fault.fault.error {} else { Issue.record("got \(fault.fault.error)") }
        }
        #expect(out.count == 0, "compaction never carries damage forward, nor writes before verifying")
    }

    @Test("regression: key-47377 and key-51429 collide under the compaction hash, and both survive")
    func collidingKeysSurvive() throws {
        #expect(keyHash("key-47377") == keyHash("key-51429"), "the issue's pair must collide, or this test proves nothing")
        var image = SegmentImage()
        image.put("key-47377", "first", 1)
        image.put("key-51429", "second", 2)
        let (out, report) = try compact(image.bytes)
        #expect(out == image.bytes)
        #expect(report.recordsWritten == 2)
        #expect(report.droppedOverwritten == 0)
    }

    /// Sequences over two colliding keys (A, B): each record is
    /// "pA:value", "pB:value", "dA" or "dB"; the expected survivors in order.
    @Test("colliding keys: each key keeps its own latest record", arguments: [
        (["pA:1", "pB:1", "pA:2"], ["B=1", "A=2"]),
        (["pB:1", "pA:1", "pB:2", "pA:2"], ["B=2", "A=2"]),
        (["pA:1", "dB", "pB:1"], ["A=1", "B=1"]),
        (["pA:1", "dA", "pB:1"], ["B=1"]),
        (["pB:1", "pA:1", "dB"], ["A=1"]),
        (["pA:1", "pA:2", "pB:1", "pB:2", "pA:3"], ["B=2", "A=3"]),
    ])
    func collidingSequences(ops: [String], expected: [String]) throws {
        let a = "key-47377", b = "key-51429"
        #expect(keyHash(a) == keyHash(b))
        var image = SegmentImage()
        for (n, op) in ops.enumerated() {
            let key = op.dropFirst().hasPrefix("A") ? a : b
            if op.hasPrefix("p") {
                image.put(key, String(op.split(separator: ":")[1]), UInt64(n))
            } else {
                image.delete(key, UInt64(n))
            }
        }
        let (out, _) = try compact(image.bytes)
        let got = listRecords(out).map { ($0.key == a ? "A" : "B") + "=" + $0.value }
        #expect(got == expected)
        #expect(out == modelLive(image).flatMap { $0 })
    }

    @Test("more colliding pairs (found by brute force over key-N) all survive", arguments: [
        ("key-67982", "key-107165"), ("key-79068", "key-138552"), ("key-22911", "key-155639"), ("key-2098", "key-164531"),
    ])
    func otherCollisions(first: String, second: String) throws {
        #expect(keyHash(first) == keyHash(second))
        var image = SegmentImage()
        image.put(first, "1", 1)
        image.put("unrelated", "x", 2)
        image.put(second, "2", 3)
        image.put(first, "3", 4)
        let (out, _) = try compact(image.bytes)
        #expect(listRecords(out).map { "\($0.key)=\($0.value)" } == ["unrelated=x", "\(second)=2", "\(first)=3"])
    }

    @Test("a seeded random history compacts to what a dictionary model keeps", arguments: [UInt64(1), 2, 3])
    func matchesModel(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var image = SegmentImage()
        for n in 0..<3000 {
            let key = "k\(rng.int(0...120))"
            if rng.int(0...4) == 0 {
                image.delete(key, UInt64(n))
            } else {
                image.put(key, "v\(n)-" + String(repeating: "p", count: rng.int(0...30)), UInt64(n))
            }
        }
        let expected = modelLive(image)
        let (out, report) = try compact(image.bytes)
        #expect(out == expected.flatMap { $0 })
        #expect(report.recordsWritten == expected.count)
        #expect(report.recordsRead == 3000)
        #expect(report.recordsWritten + report.droppedOverwritten + report.droppedTombstones == 3000)
    }

    @Test("the radix sort orders by hash and keeps record order among equal hashes, with a scratch buffer of any length")
    func radixSortStable() {
        var items: [UInt64] = [
            UInt64(0xAABB_CCDD) << 32 | 0, UInt64(0x0000_0001) << 32 | 1, UInt64(0xAABB_CCDD) << 32 | 2,
            UInt64(0x0100_0000) << 32 | 3, UInt64(0x0000_0001) << 32 | 4, UInt64(0xFFFF_FFFF) << 32 | 5,
            UInt64(0xAABB_CCDD) << 32 | 6,
        ]
        // Left longer by an earlier, larger sort.
        var scratch = [UInt64](repeating: 9, count: 20)
        KeyHash.radixSortByHash(&items, scratch: &scratch)
        #expect(items.map { $0 & 0xFFFF_FFFF } == [1, 4, 3, 0, 2, 6, 5])
    }

    @Test("in place: the segment is replaced by its compaction, keeping its mode, and the next writer trusts it")
    func inPlace() throws {
        let dir = try ScratchDirectory()
        var image = SegmentImage()
        image.put("a", "1", 1)
        image.put("b", "2", 2)
        image.put("a", "3", 3)
        image.delete("b", 4)
        image.put("c", "5", 5)
        let path = try dir.write("seg", image.bytes)
        #expect(chmod(path, 0o640) == 0)
        // A dead compaction's leftover does not stand in the way.
        try dir.write("seg.compacting", utf8("leftover"))
        let report = try Compaction.inPlace(path, maxRecord: maxRecord)
        let expected = image.records[2] + image.records[4]
        #expect(try readFile(path) == expected)
        #expect(fileMode(path) == 0o640)
        #expect(report.recordsWritten == 2)
        #expect(report.afterSize == UInt64(expected.count))
        #expect(report.beforeSize == image.size)
        #expect(!FileSystem.exists(dir.file("seg.compacting")))
        let state = try #require(try WritersLock(segment: path).verifiedEnd())
        #expect(state.identity == (try FileSystem.identity(of: path)))
        #expect(state.end == UInt64(expected.count))
        #expect(state.lastOffset == UInt64(image.records[2].count), "the last record written, c, follows a")
        #expect(state.lastChecksum == Reference.checksum(ofRecord: image.records[4]))
        #expect(report.lastWritten?.offset == state.lastOffset)
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        #expect(try state.holds(in: fd, size: UInt64(expected.count)))
        // An appender carries on at the end of the compacted segment.
        let appender = try SegmentAppender(path: path)
        let more = Reference.put("d", "6", 6)
        #expect(try more.withUnsafeBytes { try appender.append($0, sync: false) }[0].offset == UInt64(expected.count))
    }

    @Test("in place, everything deleted: an empty segment, and a verified end of 0")
    func inPlaceAllDeleted() throws {
        let dir = try ScratchDirectory()
        var image = SegmentImage()
        image.put("a", "1", 1)
        image.delete("a", 2)
        let path = try dir.write("seg", image.bytes)
        let report = try Compaction.inPlace(path, maxRecord: maxRecord)
        #expect(try readFile(path).isEmpty)
        #expect(report.recordsWritten == 0)
        #expect(report.droppedOverwritten == 1)
        #expect(report.droppedTombstones == 1)
        #expect(report.lastWritten == nil)
        let state = try #require(try WritersLock(segment: path).verifiedEnd())
        #expect(state.end == 0)
    }

    @Test("in place through a symlink: the target is compacted and the link stays a link")
    func inPlaceThroughLink() throws {
        let dir = try ScratchDirectory()
        var image = SegmentImage()
        image.put("a", "1", 1)
        image.put("a", "2", 2)
        let target = try dir.write("real.seg", image.bytes)
        #expect(symlink("real.seg", dir.file("link.seg")) == 0)
        _ = try Compaction.inPlace(dir.file("link.seg"), maxRecord: maxRecord)
        #expect(isSymlink(dir.file("link.seg")))
        #expect(try readFile(target) == image.records[1])
    }

    @Test("in place refuses while another compaction holds SEG.compacting, and changes nothing")
    func inPlaceConflict() throws {
        let dir = try ScratchDirectory()
        var image = SegmentImage()
        image.put("a", "1", 1)
        image.put("a", "2", 2)
        let path = try dir.write("seg", image.bytes)
        try dir.write("seg.compacting", [])
        let live = try FileDescriptor.open(dir.file("seg.compacting"), O_RDONLY)
        defer { live.close() }
        try live.lockExclusive()
        do {
            _ = try Compaction.inPlace(path, maxRecord: maxRecord)
            Issue.record("compacted while another compaction held its claim")
        } catch let refused as CompactionRefused {
            #expect(refused.cause == .conflict)
        }
        #expect(try readFile(path) == image.bytes)
        #expect(FileSystem.exists(dir.file("seg.compacting")))
    }
}
