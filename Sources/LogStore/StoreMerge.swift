// Merge compaction of a store (contract section 5, docs/store.md): the
// closed segments, every one but the highest, are rewritten as one segment
// holding the newest record of each key. The active segment is never
// touched, and writers never wait for a merge: they append only to the
// highest segment and create only higher ones, while a merge only renames
// over and removes lower ones.
//
//   1. flock(DIR) without waiting: one merge at a time. Temporaries of a dead
//      merge (`.segment-N.dat.tmp-…`) are removed.
//   2. List the segments; all but the highest are closed: c1 < ... < cm.
//   3. Map them, verify every record, and find each key's newest record
//      among them, in memory that does not grow with the store
//      (KeyRuns.swift): what is left is a bit per record. A PUT is kept. A
//      DELETE is kept only if an older PUT of its key is among them: until
//      those segments are gone, the tombstone is what hides it; the next
//      merge, which no longer sees that PUT, drops it. (A PUT hidden by a
//      record in the active segment is kept; the merge after the active
//      segment closes drops it.)
//   4. Walk the segments again and write the kept records, in their order,
//      to a temporary; fsync it. A crash here leaves the store as it was.
//   5. Rename it over cm, the highest closed segment; fsync the directory.
//   6. Remove c1 .. c(m-1), lowest first, fsyncing the directory each time.
//
// Why every moment answers every key as before, and why a reader scanning
// the segments in order never meets an older value of a key after a newer
// one: after step 5 the merged segment sits above every old segment that
// is left, and holds each key's newest closed record, or nothing for a key
// whose newest record is a DELETE hiding no PUT (no segment left holds a
// PUT of it). A lookup, which takes the highest segment holding the key,
// gets that record; a scan meets the old records first, in their order,
// then the newest. Removing old segments below it changes neither. A reader
// that opened the old cm before the rename holds the store as it was.

import LogFormat
import LogIO
import LogJSON

import Glibc

public struct MergeReport: Sendable {
    public struct Segment: Sendable {
        public var path: String
        public var size: UInt64
        public var liveBytes: UInt64
    }

    public var store = ""
    public var closed: [Segment] = []
    public var active: Segment?
    public var merged = false
    /// Why nothing was merged, when nothing was.
    public var skipped: String?
    /// The merged segment, renamed over the highest closed one.
    public var output: Segment?
    public var removed: [String] = []
    public var recordsRead = 0
    public var recordsWritten = 0
    public var droppedTombstones = 0
    public var keptTombstones = 0
    public var droppedOverwritten = 0
    public var durationMicroseconds: UInt64 = 0

    public var closedBytes: UInt64 { closed.reduce(0) { $0 + $1.size } }
    public var liveBytes: UInt64 { closed.reduce(0) { $0 + $1.liveBytes } }
    public var garbageBytes: UInt64 { closedBytes - liveBytes }

    public var json: String {
        func quoted(_ text: String) -> String { String(decoding: JSONText.quoted(text), as: UTF8.self) }
        func list(_ segments: [Segment], live: Bool) -> String {
            "[" + segments.map { segment in
                "{\"path\":\(quoted(segment.path)),\"size\":\(segment.size)"
                    + (live ? ",\"live_bytes\":\(segment.liveBytes),\"garbage_bytes\":\(segment.size - segment.liveBytes)" : "") + "}"
            }.joined(separator: ",") + "]"
        }
        let fraction = closedBytes == 0 ? 0 : Double(garbageBytes) / Double(closedBytes)
        return "{\"store\":\(quoted(store)),\"merged\":\(merged),\"skipped\":\(skipped.map(quoted) ?? "null"),"
            + "\"closed_bytes\":\(closedBytes),\"live_bytes\":\(liveBytes),\"garbage_bytes\":\(garbageBytes),"
            + "\"garbage_fraction\":\((fraction * 10000).rounded() / 10000),"
            + "\"active\":\(active.map { "{\"path\":\(quoted($0.path)),\"size\":\($0.size)}" } ?? "null"),"
            + "\"records_read\":\(recordsRead),\"records_written\":\(recordsWritten),"
            + "\"dropped_tombstones\":\(droppedTombstones),\"kept_tombstones\":\(keptTombstones),\"dropped_overwritten\":\(droppedOverwritten),"
            + "\"segments\":\(list(closed, live: true)),\"output\":\(output.map { "{\"path\":\(quoted($0.path)),\"size\":\($0.size)}" } ?? "null"),"
            + "\"removed\":[\(removed.map(quoted).joined(separator: ","))],"
            + "\"duration_ms\":\(Int((Double(durationMicroseconds) / 1000).rounded()))}\n"
    }
}

public enum StoreMerge {
    /// Merges the closed segments of `store` (see the top of this file)
    /// unless less than `minGarbage` of their bytes is garbage.
    public static func merge(_ store: Store, minGarbage: Double, maxRecord: Int, limits: MergeLimits = MergeLimits()) throws -> MergeReport {
        let started = monotonicMicroseconds()
        var report = MergeReport()
        report.store = store.directory
        let directory = try FileDescriptor.open(store.directory, O_RDONLY | O_DIRECTORY)
        defer { directory.close() }
        guard try directory.tryLockExclusive() else {
            throw CompactionRefused(message: "\(store.directory): another logpack is merging this store", cause: .conflict)
        }
        for name in try FileSystem.names(in: store.directory) where name.hasPrefix(".segment-") && Store.isTemporary(name) {
            try FileSystem.remove(store.path(of: name))
        }
        let readers = try store.openSegments()
        guard let activeReader = readers.last else {
            report.skipped = "the store has no segment"
            return report
        }
        report.active = MergeReport.Segment(path: activeReader.path, size: activeReader.size, liveBytes: activeReader.size)
        let closed = Array(readers.dropLast())
        guard !closed.isEmpty else {
            report.skipped = "no closed segment (only the active one, which is never merged)"
            return report
        }
        let maps = try closed.map { try MappedFile($0.file, size: $0.size) }
        try withExtendedLifetime(maps) {
            let segments = maps.map { $0.withBytes { $0 } }
            let kept = try keptRecords(closed, maps, segments, store: store, maxRecord: maxRecord, limits: limits, report: &report)
            let fraction = report.closedBytes == 0 ? 0 : Double(report.garbageBytes) / Double(report.closedBytes)
            if report.garbageBytes == 0 || fraction < minGarbage {
                report.skipped = report.garbageBytes == 0 ? "no garbage in the closed segments"
                    : "garbage is \(Int((fraction * 100).rounded()))% of the closed segments, below --min-garbage"
                return
            }
            try replace(closed, in: store, with: maps, segments, kept: kept, report: &report)
        }
        report.durationMicroseconds = monotonicMicroseconds() - started
        return report
    }

    /// How far a walk through a mapped segment goes before it gives the
    /// pages behind it back.
    private static let releaseEvery = 8 << 20

    /// The name of a merge's temporary: `.segment-N.dat<kind>.tmp-…`, N the
    /// segment it will replace, which the next merge removes if this one dies.
    private static func temporary(_ store: Store, _ target: SegmentReader, _ kind: String) -> String {
        let name = FileSystem.name(of: target.path)
        return store.path(of: ".\(name)\(kind).tmp-" + String(UInt64.random(in: 0...UInt64.max), radix: 36))
    }

    /// Step 3: verifies every record and finds the ones to keep (KeyRuns.swift);
    /// one bit per record, in store order. Fills in the report's segments
    /// and counts.
    private static func keptRecords(
        _ closed: [SegmentReader], _ maps: [MappedFile], _ segments: [UnsafeRawBufferPointer], store: Store, maxRecord: Int,
        limits: MergeLimits, report: inout MergeReport
    ) throws -> RecordBits {
        let slice = KeySlice(limits)
        var spill: KeyRuns?
        var number: UInt64 = 0
        var puts = 0
        for (n, segment) in segments.enumerated() {
            var openBatch: (offset: Int, records: Int)?
            var walker = RecordWalker(segment, mode: .verified, maxRecord: maxRecord)
            // A slice holds what it needs of a record: the pages walked go back to the kernel.
            var released = 0
            while let step = walker.next() {
                switch step {
                case .record(let record, let offset):
                    if slice.isFull(adding: record) {
                        if spill == nil { spill = try KeyRuns(path: temporary(store, closed[closed.count - 1], ".keys"), limits: limits) }
                        try spill!.write(slice)
                    }
                    slice.add(record, number: number, segment: n)
                    number += 1
                    if record.type == .put { puts += 1 }
                    openBatch = record.continues ? (openBatch?.offset ?? offset, (openBatch?.records ?? 0) + 1) : nil
                    if offset - released >= releaseEvery {
                        maps[n].release(released..<offset)
                        released = offset
                    }
                case .damage(let fault, _):
                    throw SegmentFault(path: closed[n].path, fault: fault)
                case .partial:
                    preconditionFailure("a complete buffer has no partial records")
                }
            }
            maps[n].release(released..<segment.count)
            if let openBatch {
                throw SegmentFault(path: closed[n].path, fault: RecordFault(offset: UInt64(openBatch.offset), error: .uncommittedBatch(records: openBatch.records)))
            }
        }
        let kept = RecordBits(count: Int(number))
        var live = [UInt64](repeating: 0, count: segments.count)
        var keptPuts = 0
        var keptDeletes = 0
        try live.withUnsafeMutableBufferPointer { live in
            func decide(_ newest: KeyNewest) {
                // A PUT is kept; a DELETE only while an older PUT it hides is here.
                guard newest.isPut || newest.hidesPut else { return }
                kept.insert(Int(newest.record))
                live[Int(newest.segment)] += UInt64(newest.length)
                if newest.isPut { keptPuts += 1 } else { keptDeletes += 1 }
            }
            if let spill {
                if !slice.isEmpty { try spill.write(slice) }
                try spill.merge(decide)
            } else {
                slice.forEachNewest(decide)
            }
        }
        report.keptTombstones = keptDeletes
        report.recordsRead = Int(number)
        report.droppedOverwritten = puts - keptPuts
        report.droppedTombstones = Int(number) - puts - report.keptTombstones
        for (n, reader) in closed.enumerated() {
            report.closed.append(MergeReport.Segment(path: reader.path, size: reader.size, liveBytes: live[n]))
        }
        return kept
    }

    /// Steps 4 to 6: write the merged segment, rename it over the highest
    /// closed one, remove the others.
    private static func replace(
        _ closed: [SegmentReader], in store: Store, with maps: [MappedFile], _ segments: [UnsafeRawBufferPointer], kept: RecordBits,
        report: inout MergeReport
    ) throws {
        let target = closed[closed.count - 1]
        let temporary = temporary(store, target, "")
        let file = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
        var renamed = false
        defer {
            file.close()
            if !renamed { try? FileSystem.remove(temporary) }
        }
        try file.adoptAttributes(try target.file.status())
        let out = OutputBuffer(sink: file, capacity: 4 << 20)
        var size: UInt64 = 0
        var written = 0
        // Of a batch's kept records, all but the last carry the continues
        // flag: each kept record waits until the next kept one of its batch,
        // or its batch's end, says which it is.
        var pending: RecordView?
        func write(_ source: RecordView, continues: Bool) throws {
            let p = try out.reserve(source.length)
            p.copyMemory(from: source.bytes.baseAddress!, byteCount: source.length)
            if source.continues != continues {
                _ = Record.setContinues(continues, UnsafeMutableRawBufferPointer(start: p, count: source.length))
            }
            out.commit(source.length)
            size += UInt64(source.length)
            written += 1
        }
        var number = 0
        var startedWriteback: UInt64 = 0
        for (n, segment) in segments.enumerated() {
            var offset = 0
            var released = 0
            while offset < segment.count {
                let record = RecordView.verified(segment, at: offset)
                if kept.contains(number) {
                    if let earlier = pending { try write(earlier, continues: true) }
                    pending = record
                }
                if !record.continues, let last = pending {
                    try write(last, continues: false)
                    pending = nil
                }
                if offset - released >= releaseEvery && pending == nil {
                    maps[n].release(released..<offset)
                    released = offset
                    // Written out as it goes, the merged segment leaves the
                    // final fsync little to do, and the disk to writers'
                    // fsyncs meanwhile rather than a burst at the end.
                    let written = size - UInt64(out.count)
                    file.startWriteback(offset: startedWriteback, count: Int(written - startedWriteback))
                    startedWriteback = written
                }
                offset += record.length
                number += 1
            }
            maps[n].release(released..<segment.count)
        }
        try out.flush()
        try file.sync()
        guard rename(temporary, target.path) == 0 else {
            throw SystemError(errno: errno, operation: "rename", path: target.path)
        }
        renamed = true
        try FileSystem.syncDirectory(store.directory)
        report.output = MergeReport.Segment(path: target.path, size: size, liveBytes: size)
        report.recordsWritten = written
        for reader in closed.dropLast() {
            try FileSystem.remove(reader.path)
            try FileSystem.syncDirectory(store.directory)
            report.removed.append(reader.path)
        }
        report.merged = true
    }
}

/// One bit per record: whether a merge keeps it.
final class RecordBits {
    private let words: UnsafeMutablePointer<UInt64>
    private let count: Int

    init(count: Int) {
        self.count = (count + 63) / 64
        words = UnsafeMutablePointer<UInt64>.allocate(capacity: self.count)
        words.initialize(repeating: 0, count: self.count)
    }

    deinit { words.deallocate() }

    @inline(__always)
    func insert(_ n: Int) {
        precondition(n >> 6 < count)
        words[n >> 6] |= 1 << UInt64(n & 63)
    }

    @inline(__always)
    func contains(_ n: Int) -> Bool {
        precondition(n >> 6 < count)
        return words[n >> 6] & (1 << UInt64(n & 63)) != 0
    }
}
