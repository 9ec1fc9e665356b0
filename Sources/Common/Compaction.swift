// Compaction: keep the latest PUT of each key, in original order; drop the
// records a later one of the same key overwrote, and every tombstone (once
// the older records of its key are gone, a DELETE has nothing left to hide).
//
// Two passes over the mapped segment. The first verifies every record and
// finds, per key, the newest record, marking the one it replaces as dead; keys
// are compared in place in the map, so the table holds only numbers. The
// second writes the records that are alive and are PUTs.
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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

    public var json: String {
        let ms = Double(durationMicroseconds) / 1000
        return "{\"before_size\":\(beforeSize),\"after_size\":\(afterSize),\"records_read\":\(recordsRead),"
            + "\"records_written\":\(recordsWritten),\"dropped_tombstones\":\(droppedTombstones),"
            + "\"dropped_overwritten\":\(droppedOverwritten),\"appended_meanwhile\":\(recordsAppendedMeanwhile),"
            + "\"duration_ms\":\(Int(ms.rounded()))}\n"
    }
}

/// A compaction that could not go ahead; nothing was changed.
public struct CompactionRefused: Error, ReportableError {
    public let message: String
    public let exitCode: ExitCode
}

public enum Compaction {
    /// Writes the live records of `segment` (a whole mapped segment) to
    /// `out`. Every record is verified in the first pass, so a damaged
    /// segment throws a SegmentFault before anything is written: compaction
    /// never carries damage forward.
    public static func writeLive<Out: LineBuffer>(_ segment: UnsafeRawBufferPointer, path: String, maxRecord: Int, to out: Out) throws -> CompactionReport {
        var report = CompactionReport()
        report.beforeSize = UInt64(segment.count)
        var offsets: [Int] = []
        var dead: [Bool] = []
        var table = KeyTable(segment: segment)
        var position = 0
        while position < segment.count {
            let record: RecordView
            do {
                record = try RecordView.parse(UnsafeRawBufferPointer(rebasing: segment[position...]), maxRecord: maxRecord, verify: true)
            } catch {
                throw SegmentFault(path: path, fault: RecordFault(offset: UInt64(position), error: error))
            }
            let number = offsets.count
            offsets.append(position)
            dead.append(false)
            let replacedRecord = offsets.withUnsafeBufferPointer { table.setNewest(record: number, offsets: $0) }
            if let replaced = replacedRecord {
                dead[replaced] = true
                report.droppedOverwritten += RecordView.typeByte(segment, at: offsets[replaced]) == RecordType.put.rawValue ? 1 : 0
                report.droppedTombstones += RecordView.typeByte(segment, at: offsets[replaced]) == RecordType.delete.rawValue ? 1 : 0
            }
            position += record.length
        }
        report.recordsRead = offsets.count
        for (number, offset) in offsets.enumerated() where !dead[number] {
            let record = try! RecordView.parse(UnsafeRawBufferPointer(rebasing: segment[offset...]), maxRecord: Int.max, verify: false)
            if record.type == .delete {
                report.droppedTombstones += 1
                continue
            }
            let p = try out.room(for: record.length)
            p.copyMemory(from: record.bytes.baseAddress!, byteCount: record.length)
            out.commit(record.length)
            report.recordsWritten += 1
            report.afterSize += UInt64(record.length)
        }
        return report
    }

    /// Compacts the segment at `path` in place (see the top of this file).
    public static func inPlace(_ path: String, maxRecord: Int) throws -> CompactionReport {
        let started = monotonicMicroseconds()
        let lock = try WritersLock(segment: path)
        let compactingPath = WritersLock.compactingPath(path)
        let claim: FileDescriptor = try lock.withLock {
            try lock.removeLeftoverCompaction()
            let file = try FileDescriptor.open(compactingPath, O_WRONLY | O_CREAT)
            guard try file.tryLockExclusive() else {
                file.close()
                throw CompactionRefused(message: "\(path): another compaction is in progress (\(compactingPath))", exitCode: .usage)
            }
            try file.truncate(to: 0)
            return file
        }
        defer { claim.close() }
        do {
            var report = try compact(path, into: claim, maxRecord: maxRecord, lock: lock)
            report.durationMicroseconds = monotonicMicroseconds() - started
            return report
        } catch {
            try? FileSystem.remove(compactingPath)
            throw error
        }
    }

    private static func compact(_ path: String, into claim: FileDescriptor, maxRecord: Int, lock: WritersLock) throws -> CompactionReport {
        let source = try FileDescriptor.open(path, O_RDONLY)
        defer { source.close() }
        let identity = try source.identity()
        let scanned = try source.size()
        var report: CompactionReport
        do {
            let mapped = try MappedFile(source, size: scanned)
            let out = OutputBuffer(sink: claim, capacity: 4 << 20)
            report = try writeLive(mapped.bytes, path: path, maxRecord: maxRecord, to: out)
            try out.flush()
        }
        try claim.sync()

        try lock.withLock {
            guard try FileSystem.identity(of: path) == identity else {
                throw CompactionRefused(message: "\(path): the segment was replaced while it was compacted; nothing changed", exitCode: .usage)
            }
            let now = try source.size()
            guard now >= scanned else {
                throw CompactionRefused(message: "\(path): the segment shrank while it was compacted; nothing changed", exitCode: .usage)
            }
            if now > scanned {
                let appended = try copyAppended(source, from: scanned, to: now, path: path, maxRecord: maxRecord, into: claim)
                report.recordsAppendedMeanwhile = appended
                report.recordsRead += appended
                report.recordsWritten += appended
                report.afterSize += now - scanned
                try claim.sync()
            }
            report.beforeSize = now
            guard rename(WritersLock.compactingPath(path), path) == 0 else {
                throw SystemError(errno: errno, operation: "rename", path: path)
            }
            try FileSystem.syncDirectory(FileSystem.directory(of: path))
        }
        return report
    }

    /// Copies the whole, valid records in `from..<to` of `source` to the end of
    /// `claim`; returns how many there were.
    private static func copyAppended(_ source: FileDescriptor, from: UInt64, to: UInt64, path: String, maxRecord: Int, into claim: FileDescriptor) throws -> Int {
        let buffer = ByteBuffer(capacity: Int(to - from))
        buffer.count = try source.read(at: from, into: UnsafeMutableRawBufferPointer(start: buffer.base, count: Int(to - from)))
        var count = 0
        var position = 0
        while position < buffer.count {
            do {
                let record = try RecordView.parse(UnsafeRawBufferPointer(rebasing: buffer.bytes[position...]), maxRecord: maxRecord, verify: true)
                position += record.length
                count += 1
            } catch {
                throw CompactionRefused(
                    message: "\(path): offset \(from + UInt64(position)): \(error.reason) in records appended during compaction; run logfix; nothing changed",
                    exitCode: .dataRejected)
            }
        }
        try claim.writeAll(buffer.bytes)
        return count
    }
}

extension RecordView {
    /// The type byte of the record at `offset` of an already verified segment.
    static func typeByte(_ segment: UnsafeRawBufferPointer, at offset: Int) -> UInt8 {
        segment.load(fromByteOffset: offset + RecordLayout.typeOffset, as: UInt8.self)
    }
}

/// Key -> newest record number, with keys compared in place in the segment:
/// a slot is only a hash and a record number (8 bytes), so the table stays
/// small enough to keep cache misses down. Open addressing with linear
/// probing; grows at half full.
struct KeyTable {
    private let segment: UnsafeRawPointer
    private var slots: [Slot]
    private var used = 0

    private struct Slot {
        var hash: UInt32 = 0
        /// The newest record's number plus one; 0 for an empty slot.
        var record: UInt32 = 0
    }

    init(segment: UnsafeRawBufferPointer) {
        self.segment = segment.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        slots = Array(repeating: Slot(), count: 1 << 16)
    }

    /// Makes `record` (at `offsets[record]`) the newest of its key; returns
    /// the record it replaces.
    mutating func setNewest(record: Int, offsets: UnsafeBufferPointer<Int>) -> Int? {
        if (used + 1) * 2 > slots.count { grow() }
        let key = KeyTable.key(segment, offsets[record])
        let hash = KeyTable.hash(key.base, key.count)
        let mask = slots.count - 1
        var index = Int(hash) & mask
        let segment = self.segment
        return slots.withUnsafeMutableBufferPointer { slots in
            while true {
                let slot = slots[index]
                if slot.record == 0 {
                    slots[index] = Slot(hash: hash, record: UInt32(record + 1))
                    used += 1
                    return nil
                }
                if slot.hash == hash {
                    let other = KeyTable.key(segment, offsets[Int(slot.record) - 1])
                    if other.count == key.count && memcmp(other.base, key.base, key.count) == 0 {
                        slots[index].record = UInt32(record + 1)
                        return Int(slot.record) - 1
                    }
                }
                index = (index + 1) & mask
            }
        }
    }

    @inline(__always)
    private static func key(_ segment: UnsafeRawPointer, _ offset: Int) -> (base: UnsafeRawPointer, count: Int) {
        let length = UInt32(bigEndian: segment.loadUnaligned(fromByteOffset: offset + RecordLayout.keyLengthOffset, as: UInt32.self))
        return (segment + offset + RecordLayout.headerSize, Int(length))
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Slot(), count: old.count * 2)
        let mask = slots.count - 1
        for slot in old where slot.record != 0 {
            var index = Int(slot.hash) & mask
            while slots[index].record != 0 { index = (index + 1) & mask }
            slots[index] = slot
        }
    }

    /// A fast 32-bit hash of a key, eight bytes at a time.
    @inline(__always)
    static func hash(_ p: UnsafeRawPointer, _ count: Int) -> UInt32 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(count)
        var k = 0
        while k + 8 <= count {
            h = (h ^ p.loadUnaligned(fromByteOffset: k, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
            k += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while k < count {
            tail |= UInt64(p.load(fromByteOffset: k, as: UInt8.self)) << shift
            shift += 8
            k += 1
        }
        h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        h ^= h >> 29
        return UInt32(truncatingIfNeeded: h)
    }
}
