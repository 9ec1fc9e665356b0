// Compaction: keep the latest PUT of each key, in original order; drop the
// records a later one of the same key overwrote, and every tombstone (once
// the older records of its key are gone, a DELETE has nothing left to hide).
//
// Two passes over the mapped segment. The first verifies every record and
// notes a hash of its key, and a copy of the key in an arena; sorting (hash,
// record number) pairs with a stable radix sort then puts every key's
// records side by side, oldest first, and all but the newest of each key are
// dead. Keys are compared in the arena, only within a run of equal hashes.
// Sorting touches memory in order, where a hash table would miss the cache on
// nearly every record. The second pass writes the records that are alive and
// are PUTs.
//
// In place (contract section 3), a compaction never leaves a segment missing:
//
//   1. under the writers' lock: remove a dead compaction's SEG.compacting,
//      create ours and flock it (our claim; a writer that can take that flock
//      knows the compaction died);
//   2. without the lock: compact SEG as it is now into SEG.compacting, fsync;
//   3. under the writers' lock: copy the records appended since step 2
//      verbatim, fsync, rename SEG.compacting over SEG, fsync the directory.
//
// A crash before the rename leaves the old segment; after it, the new one,
// complete and synced. Writers follow the rename because they check, after
// taking the lock, that the path still names the file they have open.

import LogFormat
import LogIO
import LogJSON

import Glibc

public struct CompactionReport: Sendable {
    public var beforeSize: UInt64 = 0
    public var afterSize: UInt64 = 0
    public var recordsRead = 0
    public var recordsWritten = 0
    public var droppedTombstones = 0
    public var droppedOverwritten = 0
    /// Records appended while the compaction ran, copied as they were.
    public var recordsAppendedMeanwhile = 0
    public var durationMicroseconds: UInt64 = 0
    /// The offset and checksum of the last record written, for the writers' lock.
    public var lastWritten: (offset: UInt64, checksum: UInt32)?

    public var json: String {
        let ms = Double(durationMicroseconds) / 1000
        return "{\"before_size\":\(beforeSize),\"after_size\":\(afterSize),\"records_read\":\(recordsRead),"
            + "\"records_written\":\(recordsWritten),\"dropped_tombstones\":\(droppedTombstones),"
            + "\"dropped_overwritten\":\(droppedOverwritten),\"appended_meanwhile\":\(recordsAppendedMeanwhile),"
            + "\"duration_ms\":\(Int(ms.rounded()))}\n"
    }
}

/// A compaction that could not go ahead; nothing was changed.
public struct CompactionRefused: Error {
    public enum Cause: Sendable {
        /// Another process changed or holds the segment: try again later.
        case conflict
        /// The records appended meanwhile are damaged: run logfix.
        case damage
    }

    public let message: String
    public let cause: Cause
}

public enum Compaction {
    /// Writes the live records of `segment` (a whole mapped segment) to
    /// `out`. Every record is verified in the first pass, so a damaged
    /// segment (an uncommitted batch included) throws a SegmentFault before
    /// anything is written: compaction never carries damage forward.
    ///
    /// Batches stay batches: of the records kept from one batch, all but the
    /// last carry the continues flag, so dropping an overwritten record never
    /// leaves a batch without the record that ends it.
    ///
    /// `progress` is told, every few megabytes, how far the work has come in
    /// bytes of the segment; each pass counts for half of them, so that the
    /// rate a meter shows is the segment compacted per second.
    public static func writeLive<Out: LineBuffer>(
        _ segment: UnsafeRawBufferPointer, path: String, maxRecord: Int, to out: Out, progress: ((UInt64) -> Void)? = nil
    ) throws -> CompactionReport {
        // Checked against each record's offset: one comparison per record.
        let reportEvery = 4 << 20
        var reportAt = progress == nil ? Int.max : reportEvery
        var report = CompactionReport()
        report.beforeSize = UInt64(segment.count)
        // Room for as many records as the segment can hold: appending then
        // never copies, and untouched room is never faulted in.
        let most = segment.count / (RecordLayout.headerSize + 1)
        var offsets: [Int] = []
        var keyed: [UInt64] = []
        var continues: [Bool] = []
        var puts: [Bool] = []
        offsets.reserveCapacity(most)
        keyed.reserveCapacity(most)
        continues.reserveCapacity(most)
        puts.reserveCapacity(most)
        // The keys, back to back in record order, and where each ends:
        // comparing keys of equal hash then reads this arena, a tenth of
        // the segment's size, instead of a record header and key at random
        // places in the whole mapped segment (a cache miss each, a quarter
        // of a compaction's time).
        let keys = ByteBuffer(capacity: max(16, segment.count / 4))
        var keyEnds: [Int] = []
        keyEnds.reserveCapacity(most)
        var openBatch: (offset: Int, records: Int)?
        var walker = RecordWalker(segment, mode: .verified, maxRecord: maxRecord)
        while let step = walker.next() {
            switch step {
            case .record(let record, let offset):
                if offset >= reportAt {
                    progress?(UInt64(offset / 2))
                    reportAt = offset + reportEvery
                }
                keyed.append(UInt64(KeyHash.hash(record.key)) << 32 | UInt64(offsets.count))
                keys.append(record.key.baseAddress!, record.key.count)
                keyEnds.append(keys.count)
                offsets.append(offset)
                continues.append(record.continues)
                puts.append(record.type == .put)
                openBatch = record.continues ? (openBatch?.offset ?? offset, (openBatch?.records ?? 0) + 1) : nil
            case .damage(let fault, _):
                throw SegmentFault(path: path, fault: fault)
            case .partial:
                preconditionFailure("a complete buffer has no partial records")
            }
        }
        if let openBatch {
            throw SegmentFault(path: path, fault: RecordFault(offset: UInt64(openBatch.offset), error: .uncommittedBatch(records: openBatch.records)))
        }
        let dead = keyEnds.withUnsafeBufferPointer { ends in
            KeyHash.overwritten(keyed) { number in
                let start = number == 0 ? 0 : ends[number - 1]
                return UnsafeRawBufferPointer(start: keys.base + start, count: ends[number] - start)
            }
        }
        for (number, isDead) in dead.enumerated() where isDead {
            if puts[number] {
                report.droppedOverwritten += 1
            } else {
                report.droppedTombstones += 1
            }
        }
        report.recordsRead = offsets.count
        let keptLater = KeyHash.keptLater(continues: continues) { !dead[$0] && puts[$0] }
        reportAt = progress == nil ? Int.max : reportEvery
        for (number, offset) in offsets.enumerated() where !dead[number] {
            if offset >= reportAt {
                progress?(UInt64((segment.count + offset) / 2))
                reportAt = offset + reportEvery
            }
            guard puts[number] else {
                report.droppedTombstones += 1
                continue
            }
            let record = RecordView.verified(segment, at: offset)
            let p = try out.room(for: record.length)
            p.copyMemory(from: record.bytes.baseAddress!, byteCount: record.length)
            var checksum = record.checksum
            if record.continues != keptLater[number] {
                checksum = Record.setContinues(keptLater[number], UnsafeMutableRawBufferPointer(start: p, count: record.length))
            }
            out.commit(record.length)
            report.lastWritten = (report.afterSize, checksum)
            report.recordsWritten += 1
            report.afterSize += UInt64(record.length)
        }
        return report
    }

    /// Compacts the segment at `path` in place (see the top of this file),
    /// telling `progress` how far it has come as `writeLive` does.
    public static func inPlace(_ segment: String, maxRecord: Int, progress: ((UInt64) -> Void)? = nil) throws -> CompactionReport {
        let started = monotonicMicroseconds()
        try FileSystem.requireSegment(segment)
        let lock = try WritersLock(segment: segment)
        // A segment named through a symlink is its target: the new segment
        // replaces the target, and the link stays a link.
        let path = lock.segmentPath
        let compactingPath = lock.compactingPath
        // Step 1, under the lock: no writer is mid-record, so the size read
        // now ends on a record boundary, and the path names the live segment.
        let (source, scanned, claim): (FileDescriptor, UInt64, FileDescriptor) = try lock.withLock {
            try lock.removeLeftoverCompaction()
            let source = try FileDescriptor.openSegment(path, O_RDONLY)
            do {
                let scanned = try source.size()
                // Exclusive and never through a link: a leftover was removed
                // above, so a file here belongs to a running compaction.
                let claim: FileDescriptor
                do {
                    claim = try FileDescriptor.open(compactingPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
                } catch let error as SystemError where error.errno == EEXIST {
                    throw CompactionRefused(message: "\(path): another compaction is in progress (\(compactingPath))", cause: .conflict)
                }
                do {
                    try claim.lockExclusive()
                    try claim.adoptAttributes(try source.status())
                } catch {
                    claim.close()
                    try? FileSystem.remove(compactingPath)
                    throw error
                }
                return (source, scanned, claim)
            } catch {
                source.close()
                throw error
            }
        }
        defer {
            claim.close()
            source.close()
        }
        do {
            var report = try compact(path, source: source, scanned: scanned, into: claim, maxRecord: maxRecord, lock: lock, progress: progress)
            report.durationMicroseconds = monotonicMicroseconds() - started
            return report
        } catch {
            try? FileSystem.remove(compactingPath)
            throw error
        }
    }

    private static func compact(
        _ path: String, source: FileDescriptor, scanned: UInt64, into claim: FileDescriptor, maxRecord: Int, lock: WritersLock,
        progress: ((UInt64) -> Void)?
    ) throws -> CompactionReport {
        let identity = try source.identity()
        var report: CompactionReport
        do {
            let out = OutputBuffer(sink: claim, capacity: 4 << 20)
            report = try MappedFile(source, size: scanned).withBytes {
                try writeLive($0, path: path, maxRecord: maxRecord, to: out, progress: progress)
            }
            try out.flush()
        }
        try claim.sync()

        // Step 3, under the lock again: catch up, swap, make the swap durable.
        try lock.withLock {
            guard try FileSystem.identity(of: path) == identity else {
                throw CompactionRefused(message: "\(path): the segment was replaced while it was compacted; nothing changed", cause: .conflict)
            }
            let now = try source.size()
            guard now >= scanned else {
                throw CompactionRefused(message: "\(path): the segment shrank while it was compacted; nothing changed", cause: .conflict)
            }
            if now > scanned {
                let (appended, bytes, last) = try copyAppended(source, from: scanned, to: now, path: path, maxRecord: maxRecord, into: claim)
                report.lastWritten = last.map { (report.afterSize + $0.offset, $0.checksum) } ?? report.lastWritten
                report.recordsAppendedMeanwhile = appended
                report.recordsRead += appended
                report.recordsWritten += appended
                report.afterSize += bytes
                try claim.sync()
            }
            report.beforeSize = now
            guard rename(lock.compactingPath, path) == 0 else {
                throw SystemError(errno: errno, operation: "rename", path: path)
            }
            try FileSystem.syncDirectory(FileSystem.directory(of: path))
            // The next writer need not verify what was just written from verified records.
            try? lock.recordVerifiedEnd(VerifiedEnd(identity: try claim.identity(), end: report.afterSize, last: report.lastWritten))
        }
        return report
    }

    /// Copies the whole, valid records in `from..<to` of `source` to the end of
    /// `claim`; returns how many there were, their bytes, and the last one's
    /// offset (from `from`) and checksum.
    private static func copyAppended(
        _ source: FileDescriptor, from: UInt64, to: UInt64, path: String, maxRecord: Int, into claim: FileDescriptor
    ) throws -> (count: Int, bytes: UInt64, last: (offset: UInt64, checksum: UInt32)?) {
        let buffer = ByteBuffer(capacity: Int(to - from))
        buffer.count = try source.read(at: from, into: UnsafeMutableRawBufferPointer(start: buffer.base, count: Int(to - from)))
        var count = 0
        var pending = 0
        var committedEnd = 0
        var last: (offset: UInt64, checksum: UInt32)?
        var walker = RecordWalker(buffer.bytes, mode: .verified, maxRecord: maxRecord, baseOffset: from)
        while let step = walker.next() {
            switch step {
            case .record(let record, let offset):
                pending += 1
                // A batch left open by a writer that died was never
                // acknowledged: like a torn tail, it is not carried over.
                guard !record.continues else { continue }
                count += pending
                pending = 0
                committedEnd = offset + record.length
                last = (UInt64(offset), record.checksum)
            case .damage(let fault, _):
                throw CompactionRefused(
                    message: "\(path): \(fault.message) in records appended during compaction; run logfix; nothing changed",
                    cause: .damage)
            case .partial: preconditionFailure("a complete buffer has no partial records")
            }
        }
        try claim.writeAll(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<committedEnd]))
        return (count, UInt64(committedEnd), last)
    }
}

/// Finding, for each key, the records a newer one of the same key replaced.
enum KeyHash {
    /// `keyed` holds one `hash << 32 | record number` per record, in record
    /// order, and `keyOf` gives a record number's key; returns which records
    /// are overwritten by a later one. Inlined so that `keyOf` is too: a call
    /// per comparison cost a tenth of a compaction.
    @inline(__always)
    static func overwritten(_ keyed: [UInt64], keyOf: (Int) -> UnsafeRawBufferPointer) -> [Bool] {
        var sorted = keyed
        var scratch: [UInt64] = []
        radixSortByHash(&sorted, scratch: &scratch)
        var dead = [Bool](repeating: false, count: keyed.count)
        func key(_ item: UInt64) -> UnsafeRawBufferPointer { keyOf(Int(item & 0xFFFF_FFFF)) }
        var start = 0
        while start < sorted.count {
            var end = start + 1
            while end < sorted.count && sorted[end] >> 32 == sorted[start] >> 32 { end += 1 }
            // A run of equal hashes, oldest record first: a record is dead if
            // a later one in the run has the same key.
            for a in start..<(end - 1) {
                for b in (a + 1)..<end where compareBytes(key(sorted[a]), key(sorted[b])) == 0 {
                    dead[Int(sorted[a] & 0xFFFF_FFFF)] = true
                    break
                }
            }
            start = end
        }
        return dead
    }

    /// Per record, whether a record of the same batch after it is kept: the
    /// flag each kept record must carry so that kept batches stay batches.
    /// Walked backwards, a record without the flag starts (ends) a batch.
    @inline(__always)
    static func keptLater(continues: [Bool], kept: (Int) -> Bool) -> [Bool] {
        var result = [Bool](repeating: false, count: continues.count)
        var later = false
        for number in continues.indices.reversed() {
            if !continues[number] { later = false }
            result[number] = later
            if kept(number) { later = true }
        }
        return result
    }

    /// A stable LSD radix sort on the high 32 bits, a byte per pass, so equal
    /// hashes keep record order. `scratch` is its second buffer, kept by
    /// callers that sort again.
    static func radixSortByHash(_ items: inout [UInt64], scratch: inout [UInt64]) {
        let count = items.count
        if scratch.count < count { scratch = [UInt64](repeating: 0, count: count) }
        // The four passes' bucket counts from one read of the items.
        var starts = [Int](repeating: 0, count: 4 * 256)
        items.withUnsafeMutableBufferPointer { a in
            scratch.withUnsafeMutableBufferPointer { b in
                starts.withUnsafeMutableBufferPointer { starts in
                    for n in 0..<count {
                        let hash = Int(truncatingIfNeeded: a[n] >> 32)
                        starts[hash & 0xFF] += 1
                        starts[256 + (hash >> 8 & 0xFF)] += 1
                        starts[512 + (hash >> 16 & 0xFF)] += 1
                        starts[768 + (hash >> 24 & 0xFF)] += 1
                    }
                    for pass in 0..<4 {
                        var position = 0
                        for bucket in (pass * 256)..<(pass * 256 + 256) {
                            let size = starts[bucket]
                            starts[bucket] = position
                            position += size
                        }
                    }
                    // There and back twice: the result ends in `items`.
                    for pass in 0..<4 {
                        let (src, dst) = pass & 1 == 0 ? (a, b) : (b, a)
                        let shift = UInt64(32 + 8 * pass)
                        let base = pass * 256
                        for n in 0..<count {
                            let bucket = base + Int((src[n] >> shift) & 0xFF)
                            dst[starts[bucket]] = src[n]
                            starts[bucket] += 1
                        }
                    }
                }
            }
        }
    }

    /// A 32-bit hash of a key: eight bytes at a time, then a full 64-bit
    /// finaliser, so keys that share a long prefix still spread evenly.
    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer) -> UInt32 {
        guard let p = key.baseAddress else { return 0 }
        let count = key.count
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(count)
        var k = 0
        while k + 8 <= count {
            h = (h ^ p.loadUnaligned(fromByteOffset: k, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h = (h << 27) | (h >> 37)
            k += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while k < count {
            tail |= UInt64(p.load(fromByteOffset: k, as: UInt8.self)) << shift
            shift += 8
            k += 1
        }
        h ^= tail
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return UInt32(truncatingIfNeeded: h >> 32)
    }
}
