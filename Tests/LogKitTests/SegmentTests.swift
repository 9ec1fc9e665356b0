// LogStore's segment layer: RecordReader with small chunks, SegmentReader,
// SegmentAppender and WritersLock.

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

/// Records of awkward sizes around the header size and the small chunks below.
private func awkwardSegment() -> SegmentImage {
    var image = SegmentImage()
    let valueSizes = [0, 1, 27, 28, 29, 3, 100, 0, 255, 2, 64, 1, 500, 9]
    for (n, size) in valueSizes.enumerated() {
        if n % 5 == 4 {
            image.delete("k\(n)", UInt64(n))
        } else {
            image.add(Reference.record(type: 1, key: utf8("key-\(n)"), value: (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ n) },
                                       timestamp: UInt64(1000 + n)))
        }
    }
    return image
}

private func append(_ appender: SegmentAppender, _ bytes: [UInt8], sync: Bool = false) throws -> UInt64 {
    try bytes.withUnsafeBytes { try appender.append($0, sync: sync) }[0].offset
}

// MARK: RecordReader

@Suite("RecordReader with small chunks")
struct RecordReaderChunkTests {
    @Test("every record and its offset, whatever the chunk size", arguments: [1, 2, 27, 28, 29, 35, 64, 100, 1 << 20])
    func chunkSizes(chunk: Int) throws {
        let image = awkwardSegment()
        let result = try readRecords(file: image.bytes, chunk: chunk)
        #expect(result.fault == nil)
        #expect(result.records.map(\.offset) == image.offsets)
        #expect(result.records.map(\.record.bytes) == image.records)
    }

    @Test("an incomplete record at the end: the records before it, then incompletePayload at its offset", arguments: [1, 7, 28, 1 << 20])
    func incompleteAtEnd(chunk: Int) throws {
        let image = awkwardSegment()
        let last = Reference.put("tail", String(repeating: "v", count: 50), 5)
        let result = try readRecords(file: image.bytes + last.prefix(40), chunk: chunk)
        #expect(result.records.map(\.offset) == image.offsets)
        #expect(result.fault == RecordFault(offset: image.size, error: .incompletePayload(available: 40, length: last.count)))
    }

    @Test("a cut header at the end is incompleteHeader at its offset", arguments: [1, 28, 1 << 20])
    func cutHeader(chunk: Int) throws {
        let image = awkwardSegment()
        let result = try readRecords(file: image.bytes + Reference.put("x", "y", 1).prefix(17), chunk: chunk)
        #expect(result.records.count == image.records.count)
        #expect(result.fault == RecordFault(offset: image.size, error: .incompleteHeader(available: 17)))
    }

    @Test("startOffset shifts every offset with tiny chunks too")
    func startOffset() throws {
        let image = awkwardSegment()
        let result = try readRecords(file: image.bytes, startOffset: 1_000_000, chunk: 3)
        #expect(result.records.map(\.offset) == image.offsets.map { $0 + 1_000_000 })
    }
}

// MARK: SegmentReader

@Suite("SegmentReader")
struct SegmentReaderTests {
    @Test("scan from 0 yields every record with its offset; size is the size at open")
    func scanAll() throws {
        let dir = try ScratchDirectory()
        let image = awkwardSegment()
        let path = try dir.write("seg", image.bytes)
        let reader = try SegmentReader(path: path)
        #expect(reader.size == image.size)
        #expect(reader.path == path)
        var seen: [(UInt64, [UInt8])] = []
        try reader.scan(maxRecord: maxRecord, verify: true) { record, offset in seen.append((offset, Array(record.bytes))) }
        #expect(seen.map(\.0) == image.offsets)
        #expect(seen.map(\.1) == image.records)
    }

    @Test("scan from a record's offset starts there, with absolute offsets; from the end yields nothing")
    func scanFrom() throws {
        let dir = try ScratchDirectory()
        let image = awkwardSegment()
        let reader = try SegmentReader(path: try dir.write("seg", image.bytes))
        var offsets: [UInt64] = []
        try reader.scan(from: image.offsets[5], maxRecord: maxRecord, verify: true) { _, offset in offsets.append(offset) }
        #expect(offsets == Array(image.offsets[5...]))
        var count = 0
        try reader.scan(from: image.size, maxRecord: maxRecord, verify: true) { _, _ in count += 1 }
        #expect(count == 0)
    }

    @Test("scan from past the end is OffsetBeyondEnd")
    func scanPastEnd() throws {
        let dir = try ScratchDirectory()
        let image = awkwardSegment()
        let reader = try SegmentReader(path: try dir.write("seg", image.bytes))
        do {
            try reader.scan(from: image.size + 1, maxRecord: maxRecord, verify: true) { _, _ in }
            Issue.record("scanned from past the end")
        } catch let error as OffsetBeyondEnd {
            #expect(error.offset == image.size + 1)
            #expect(error.size == image.size)
            #expect(error.path == reader.path)
        }
    }

    @Test("an incomplete record at the end: the records before it, then a SegmentFault naming the segment")
    func incompleteAtEnd() throws {
        let dir = try ScratchDirectory()
        var image = SegmentImage()
        image.put("a", "1")
        image.put("b", "2")
        let cut = Reference.put("c", "three", 3)
        let path = try dir.write("seg", image.bytes + cut.prefix(30))
        let reader = try SegmentReader(path: path)
        var keys: [String] = []
        do {
            try reader.scan(maxRecord: maxRecord, verify: true) { record, _ in keys.append(String(decoding: record.key, as: UTF8.self)) }
            Issue.record("an incomplete record passed")
        } catch let fault as SegmentFault {
            #expect(fault.path == path)
            #expect(fault.fault == RecordFault(offset: image.size, error: .incompletePayload(available: 30, length: cut.count)))
            #expect(fault.message == "\(path): offset \(image.size): incomplete record: 30 of \(cut.count) bytes")
        }
        #expect(keys == ["a", "b"])
    }

    @Test("record(at:) reads each record, with or without its length known")
    func recordAt() throws {
        let dir = try ScratchDirectory()
        let image = awkwardSegment()
        let reader = try SegmentReader(path: try dir.write("seg", image.bytes))
        let buffer = ByteBuffer()
        for (offset, bytes) in zip(image.offsets, image.records) {
            let plain = try reader.record(at: offset, maxRecord: maxRecord, verify: true, buffer: buffer)
            #expect(Array(plain.bytes) == bytes)
            let known = try reader.record(at: offset, length: UInt64(bytes.count), maxRecord: maxRecord, verify: true, buffer: buffer)
            #expect(Array(known.bytes) == bytes)
            // A length hint that is too short still reads the whole record.
            let short = try reader.record(at: offset, length: 28, maxRecord: maxRecord, verify: true, buffer: buffer)
            #expect(Array(short.bytes) == bytes)
        }
    }

    @Test("record(at:) at or past the end is OffsetBeyondEnd; inside a record it is the fault found there")
    func recordAtBadOffsets() throws {
        let dir = try ScratchDirectory()
        var image = SegmentImage()
        image.put("a", "one")
        image.put("b", "two")
        let cut = Reference.put("c", "three", 3)
        let path = try dir.write("seg", image.bytes + cut.prefix(31))
        let reader = try SegmentReader(path: path)
        let size = reader.size
        let buffer = ByteBuffer()
        #expect(throws: OffsetBeyondEnd.self) { _ = try reader.record(at: size, maxRecord: maxRecord, verify: true, buffer: buffer) }
        do {
            _ = try reader.record(at: 3, maxRecord: maxRecord, verify: true, buffer: buffer)
            Issue.record("read a record at offset 3")
        } catch let fault as SegmentFault {
            #expect(fault.fault.offset == 3)
            guard case .badMagic = fault.fault.error else { Issue.record("got \(fault.fault.error)"); return }
        }
        do {
            _ = try reader.record(at: image.size, maxRecord: maxRecord, verify: true, buffer: buffer)
            Issue.record("read a cut record")
        } catch let fault as SegmentFault {
            #expect(fault.fault == RecordFault(offset: image.size, error: .incompletePayload(available: 31, length: cut.count)))
        }
    }

    @Test("record(at:) verifies the checksum only when asked")
    func recordAtVerify() throws {
        let dir = try ScratchDirectory()
        let record = Reference.put("key", "value", 7)
        let damaged = flipped(record, at: record.count - 1)
        let reader = try SegmentReader(path: try dir.write("seg", damaged))
        let buffer = ByteBuffer()
        do {
            _ = try reader.record(at: 0, maxRecord: maxRecord, verify: true, buffer: buffer)
            Issue.record("a checksum mismatch passed")
        } catch let fault as SegmentFault {
            guard case .checksumMismatch = fault.fault.error else { Issue.record("got \(fault.fault.error)"); return }
        }
        let unverified = try reader.record(at: 0, maxRecord: maxRecord, verify: false, buffer: buffer)
        #expect(Array(unverified.bytes) == damaged)
    }

    @Test("anything but a regular file is refused; a missing one is ENOENT")
    func notARegularFile() throws {
        let dir = try ScratchDirectory()
        #expect(mkdir(dir.file("sub"), 0o755) == 0)
        #expect(throws: PathRefused.self) { _ = try SegmentReader(path: dir.file("sub")) }
        #expect(mkfifo(dir.file("fifo"), 0o644) == 0)
        #expect(throws: PathRefused.self) { _ = try SegmentReader(path: dir.file("fifo")) }
        do {
            _ = try SegmentReader(path: dir.file("missing"))
            Issue.record("opened a missing segment")
        } catch let error as SystemError {
            #expect(error.errno == ENOENT)
        }
    }
}

// MARK: SegmentAppender

@Suite("SegmentAppender")
struct SegmentAppenderTests {
    @Test("append creates the segment and its directory and returns each batch's offset")
    func offsets() throws {
        let dir = try ScratchDirectory()
        let path = dir.file("data/deeper/seg")
        let appender = try SegmentAppender(path: path)
        let r1 = Reference.put("a", "1", 1)
        let batch = Reference.put("b", "22", 2) + Reference.delete("a", 3)
        let r4 = Reference.put("c", String(repeating: "x", count: 300), 4)
        #expect(try append(appender, r1) == 0)
        #expect(try append(appender, batch, sync: true) == UInt64(r1.count))
        #expect(try append(appender, r4) == UInt64(r1.count + batch.count))
        #expect(try readFile(path) == r1 + batch + r4)
        // The next writer is told where the verified records end.
        let state = try #require(try WritersLock(segment: path).verifiedEnd())
        #expect(state.end == UInt64(r1.count + batch.count + r4.count))
        #expect(state.identity == (try FileSystem.identity(of: path)))
    }

    @Test("a torn tail is truncated before the append, and notice is told where and why")
    func tornTail() throws {
        let dir = try ScratchDirectory()
        var image = SegmentImage()
        image.put("a", "1")
        image.put("b", "2")
        let torn = Reference.put("c", "never acknowledged", 3).prefix(40)
        let path = try dir.write("seg", image.bytes + torn)
        let appender = try SegmentAppender(path: path)
        let notices = MessageLog()
        appender.notice = { notices($0) }
        let r = Reference.put("d", "4", 4)
        #expect(try append(appender, r) == image.size)
        #expect(try readFile(path) == image.bytes + r)
        #expect(notices.messages.count == 1)
        let message = notices.messages.first ?? ""
        #expect(message.hasPrefix("\(path): truncated a torn tail at offset \(image.size) (40 bytes never acknowledged; "))
        #expect(message.contains("incomplete record"))
        // Nothing more to truncate next time.
        #expect(try append(appender, r) == image.size + UInt64(r.count))
        #expect(notices.messages.count == 1)
    }

    @Test("a tear left after this appender's last write (another writer crashed) is found through the lock's verified end")
    func tornAfterVerifiedEnd() throws {
        let dir = try ScratchDirectory()
        let path = dir.file("seg")
        let appender = try SegmentAppender(path: path)
        let notices = MessageLog()
        appender.notice = { notices($0) }
        let r1 = Reference.put("a", "1", 1)
        #expect(try append(appender, r1) == 0)
        try appendFile(path, Array(Reference.put("b", "2", 2).prefix(12)))
        let r3 = Reference.put("c", "3", 3)
        #expect(try append(appender, r3) == UInt64(r1.count))
        #expect(try readFile(path) == r1 + r3)
        #expect(notices.messages.count == 1)
        #expect(notices.messages.first?.contains("at offset \(r1.count) (12 bytes") == true)
    }

    @Test("damage followed by valid records throws TailDamageRefused and appends nothing")
    func damageRefused() throws {
        let dir = try ScratchDirectory()
        let r1 = Reference.put("a", "one", 1)
        let r2 = Reference.put("b", "two", 2)
        let r3 = Reference.put("c", "three", 3)
        let original = r1 + flipped(r2, at: r2.count - 1) + r3
        let path = try dir.write("seg", original)
        let appender = try SegmentAppender(path: path)
        let notices = MessageLog()
        appender.notice = { notices($0) }
        for _ in 0..<2 {
            do {
                _ = try append(appender, Reference.put("d", "4", 4))
                Issue.record("appended after damage")
            } catch let refused as TailDamageRefused {
                #expect(refused.path == path)
                #expect(refused.verification.failure?.offset == UInt64(r1.count))
                if case .checksumMismatch = refused.verification.failure?.error {} else {
                    Issue.record("failure: \(String(describing: refused.verification.failure))")
                }
                #expect(refused.verification.recordsAfterDamage == 1)
                #expect(refused.verification.validRecords == 1)
                #expect(refused.verification.damaged == [DamagedRange(start: UInt64(r1.count), end: UInt64(r1.count + r2.count))])
                #expect(refused.message.contains("1 valid records follow the damage"))
            }
            #expect(try readFile(path) == original)
        }
        #expect(notices.messages.isEmpty)
    }

    @Test("a segment rewritten in place under the same inode is verified again before an append")
    func rewrittenInPlace() throws {
        let dir = try ScratchDirectory()
        let path = dir.file("seg")
        let appender = try SegmentAppender(path: path)
        let r1 = Reference.put("a", "1", 1), r2 = Reference.put("b", "2", 2)
        _ = try append(appender, r1 + r2)
        let before = try FileSystem.identity(of: path)
        // `cp backup SEG`: same inode, same size, other bytes, damage then a valid record.
        let rewritten = flipped(Reference.put("x", "9", 9), at: 29) + Reference.put("y", "8", 8)
        #expect(rewritten.count == r1.count + r2.count)
        let fd = try FileDescriptor.open(path, O_WRONLY)
        try fd.writeAll(rewritten)
        fd.close()
        #expect(try FileSystem.identity(of: path) == before)
        #expect(throws: TailDamageRefused.self) { _ = try append(appender, Reference.put("c", "3", 3)) }
        #expect(try readFile(path) == rewritten)
    }

    @Test("a segment renamed over the path (a compaction) is followed: the append goes to the new file")
    func followsRename() throws {
        let dir = try ScratchDirectory()
        let path = dir.file("seg")
        let appender = try SegmentAppender(path: path)
        let r1 = Reference.put("a", "1", 1)
        _ = try append(appender, r1)
        let replacement = Reference.put("z", "replacement", 9) + Reference.put("y", "2", 10)
        let other = try dir.write("other", replacement)
        #expect(rename(other, path) == 0)
        let r2 = Reference.put("b", "2", 2)
        #expect(try append(appender, r2) == UInt64(replacement.count))
        #expect(try readFile(path) == replacement + r2)
    }

    @Test("a FIFO at the segment path is refused at once, not waited on")
    func fifoRefused() throws {
        let dir = try ScratchDirectory()
        #expect(mkfifo(dir.file("seg"), 0o644) == 0)
        #expect(throws: PathRefused.self) { _ = try SegmentAppender(path: dir.file("seg")) }
    }

    @Test("committedLength: the longest run of whole batches (of one record each here) within a limit")
    func committedLength() {
        let r1 = Reference.put("a", "1", 1), r2 = Reference.put("bb", "22", 2), r3 = Reference.delete("a", 3)
        let all = r1 + r2 + r3
        all.withUnsafeBytes { raw in
            #expect(SegmentAppender.committedLength(raw, within: 0) == 0)
            #expect(SegmentAppender.committedLength(raw, within: r1.count - 1) == 0)
            #expect(SegmentAppender.committedLength(raw, within: r1.count) == r1.count)
            #expect(SegmentAppender.committedLength(raw, within: r1.count + r2.count + 5) == r1.count + r2.count)
            #expect(SegmentAppender.committedLength(raw, within: all.count) == all.count)
            #expect(SegmentAppender.committedLength(raw, within: all.count + 100) == all.count)
        }
    }
}

// MARK: WritersLock

@Suite("WritersLock")
struct WritersLockTests {
    @Test("the verified end round-trips through the lock file, for a new lock object too")
    func verifiedEndRoundTrip() throws {
        let dir = try ScratchDirectory()
        let segment = dir.file("seg")
        let lock = try WritersLock(segment: segment)
        #expect(lock.verifiedEnd() == nil, "a new lock file holds no state")
        let state = VerifiedEnd(identity: FileIdentity(device: 0x0102_0304_0506_0708, inode: 0xFFEE_DDCC_BBAA_9988), end: 123_456_789_012,
                                last: (offset: 123_456_789_000, checksum: 0xCAFE_F00D))
        try lock.recordVerifiedEnd(state)
        #expect(lock.verifiedEnd() == state)
        let reread = try #require(try WritersLock(segment: segment).verifiedEnd())
        #expect(reread == state)
        #expect(reread.identity == FileIdentity(device: 0x0102_0304_0506_0708, inode: 0xFFEE_DDCC_BBAA_9988))
        #expect(reread.end == 123_456_789_012)
        #expect(reread.lastOffset == 123_456_789_000)
        #expect(reread.lastChecksum == 0xCAFE_F00D)
        let raw = try readFile(segment + ".lock")
        #expect(raw.count == VerifiedEnd.size)
        #expect(Array(raw[20..<28]) == bigEndian(UInt64(123_456_789_012)))
        // A later state overwrites the earlier one in place.
        let later = VerifiedEnd(identity: state.identity, end: 0, last: nil)
        try lock.recordVerifiedEnd(later)
        #expect(try WritersLock(segment: segment).verifiedEnd() == later)
        #expect(later.lastOffset == 0 && later.lastChecksum == 0)
        #expect(try readFile(segment + ".lock").count == VerifiedEnd.size)
    }

    @Test("a corrupt state reads as nil, whichever byte is damaged", arguments: Array(0..<44))
    func corruptState(index: Int) throws {
        let dir = try ScratchDirectory()
        let segment = dir.file("seg")
        let lock = try WritersLock(segment: segment)
        try lock.recordVerifiedEnd(VerifiedEnd(identity: FileIdentity(device: 1, inode: 2), end: 3, last: (0, 4)))
        var raw = try readFile(segment + ".lock")
        #expect(raw.count == 44)
        raw[index] ^= 0x01
        try writeFile(segment + ".lock", raw)
        #expect(lock.verifiedEnd() == nil)
    }

    @Test("a truncated or foreign lock file reads as nil")
    func shortState() throws {
        let dir = try ScratchDirectory()
        let segment = dir.file("seg")
        let lock = try WritersLock(segment: segment)
        try lock.recordVerifiedEnd(VerifiedEnd(identity: FileIdentity(device: 1, inode: 2), end: 3, last: (0, 4)))
        let raw = try readFile(segment + ".lock")
        try writeFile(segment + ".lock", Array(raw.prefix(raw.count - 1)))
        #expect(lock.verifiedEnd() == nil)
        try writeFile(segment + ".lock", utf8("this is not a verified end at all, though it is long enough"))
        #expect(lock.verifiedEnd() == nil)
    }

    @Test("holds: the same file with the named last record in place; not another file, a shorter one, or rewritten bytes")
    func holds() throws {
        let dir = try ScratchDirectory()
        let r1 = Reference.put("a", "1", 1), r2 = Reference.put("b", "2", 2)
        let path = try dir.write("seg", r1 + r2)
        let fd = try FileDescriptor.open(path, O_RDWR)
        defer { fd.close() }
        let identity = try fd.identity()
        let state = VerifiedEnd(identity: identity, end: UInt64(r1.count + r2.count), last: (UInt64(r1.count), Reference.checksum(ofRecord: r2)))
        #expect(try state.holds(in: fd, size: UInt64(r1.count + r2.count)))
        #expect(try state.holds(in: fd, size: UInt64(r1.count + r2.count + 10)), "a segment that grew still holds its verified prefix")
        #expect(try !state.holds(in: fd, size: UInt64(r1.count + r2.count - 1)))
        var wrongChecksum = state
        wrongChecksum.lastChecksum ^= 1
        #expect(try !wrongChecksum.holds(in: fd, size: state.end))
        var wrongOffset = state
        wrongOffset.lastOffset = 0
        #expect(try !wrongOffset.holds(in: fd, size: state.end), "the record at offset 0 does not end at `end`")
        var otherFile = state
        otherFile.identity = FileIdentity(device: identity.device, inode: identity.inode &+ 1)
        #expect(try !otherFile.holds(in: fd, size: state.end))
        #expect(try VerifiedEnd(identity: identity, end: 0, last: nil).holds(in: fd, size: 0))
        // The same inode rewritten in place with other records: no longer held.
        try fd.truncate(to: 0)
        try fd.writeAll(r2 + r1)
        #expect(try !state.holds(in: fd, size: state.end))
    }

    @Test("a symlink at SEG.lock is refused, never followed, and its target is not created or changed")
    func symlinkAtLockRefused() throws {
        let dir = try ScratchDirectory()
        let segment = dir.file("seg")
        #expect(symlink(dir.file("planted"), segment + ".lock") == 0)
        do {
            _ = try WritersLock(segment: segment)
            Issue.record("opened the lock through a symlink")
        } catch {
            #expect(error.errno == ELOOP)
        }
        #expect(!FileSystem.exists(dir.file("planted")))
        let victim = try dir.write("victim", utf8("precious"))
        #expect(unlink(segment + ".lock") == 0)
        #expect(symlink(victim, segment + ".lock") == 0)
        #expect(throws: SystemError.self) { _ = try WritersLock(segment: segment) }
        #expect(try readFile(victim) == utf8("precious"))
    }

    @Test("a segment named through a symlink takes its target's lock")
    func segmentThroughLink() throws {
        let dir = try ScratchDirectory()
        try dir.write("real.seg", [])
        #expect(symlink("real.seg", dir.file("link.seg")) == 0)
        let lock = try WritersLock(segment: dir.file("link.seg"))
        #expect(lock.segmentPath == dir.file("real.seg"))
        #expect(lock.compactingPath == dir.file("real.seg.compacting"))
        #expect(FileSystem.exists(dir.file("real.seg.lock")))
        #expect(!FileSystem.exists(dir.file("link.seg.lock")))
    }

    @Test("read-only: a missing lock file is an error and is not created")
    func readOnlyMissing() throws {
        let dir = try ScratchDirectory()
        do {
            _ = try WritersLock(segment: dir.file("seg"), readOnly: true)
            Issue.record("opened a missing lock read-only")
        } catch {
            #expect(error.errno == ENOENT)
        }
        #expect(dir.names().isEmpty)
    }

    @Test("the lock is exclusive while held, and withLock releases it even when the body throws")
    func exclusive() throws {
        struct Boom: Error {}
        let dir = try ScratchDirectory()
        let segment = dir.file("seg")
        let lock = try WritersLock(segment: segment)
        let other = try FileDescriptor.open(segment + ".lock", O_RDONLY)
        defer { other.close() }
        let value = try lock.withLock { () throws -> Int in
            #expect(try other.tryLockExclusive() == false)
            return 42
        }
        #expect(value == 42)
        #expect(try other.tryLockExclusive() == true)
        other.unlock()
        #expect(throws: Boom.self) { try lock.withLock { throw Boom() } }
        #expect(try other.tryLockExclusive() == true)
        other.unlock()
    }

    @Test("removeLeftoverCompaction removes a dead compaction's file and keeps a live one's")
    func leftoverCompaction() throws {
        let dir = try ScratchDirectory()
        let segment = dir.file("seg")
        let lock = try WritersLock(segment: segment)
        #expect(try lock.removeLeftoverCompaction() == false, "nothing to remove")
        try dir.write("seg.compacting", [1, 2, 3])
        #expect(try lock.removeLeftoverCompaction() == true)
        #expect(!FileSystem.exists(lock.compactingPath))

        try dir.write("seg.compacting", [1, 2, 3])
        let live = try FileDescriptor.open(lock.compactingPath, O_RDONLY)
        try live.lockExclusive()
        #expect(try lock.removeLeftoverCompaction() == false)
        #expect(FileSystem.exists(lock.compactingPath))
        live.close()
        #expect(try lock.removeLeftoverCompaction() == true)

        let victim = try dir.write("victim", utf8("keep me"))
        #expect(symlink(victim, lock.compactingPath) == 0)
        #expect(try lock.removeLeftoverCompaction() == true)
        #expect(!isSymlink(lock.compactingPath))
        #expect(try readFile(victim) == utf8("keep me"))
    }
}
