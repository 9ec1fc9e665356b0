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
//      among them. A PUT is kept. A DELETE is kept only if an older PUT of
//      its key is among them: until those segments are gone, the tombstone
//      is what hides it; the next merge, which no longer sees that PUT,
//      drops it. (A PUT hidden by a record in the active segment is kept;
//      the merge after the active segment closes drops it.)
//   4. Write the kept records, in their order, to a temporary; fsync it.
//      A crash here leaves the store as it was.
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
    public static func merge(_ store: Store, minGarbage: Double, maxRecord: Int) throws -> MergeReport {
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
        let maps = try closed.map { try MappedFile($0.file, size: $0.size) }
        try withExtendedLifetime(maps) {
            let segments = maps.map { $0.withBytes { $0 } }
            let live = try liveRecords(closed, segments, maxRecord: maxRecord, report: &report)
            for (n, reader) in closed.enumerated() {
                report.closed.append(MergeReport.Segment(path: reader.path, size: reader.size, liveBytes: live.bytesPerSegment[n]))
            }
            guard !closed.isEmpty else {
                report.skipped = "no closed segment (only the active one, which is never merged)"
                return
            }
            let fraction = report.closedBytes == 0 ? 0 : Double(report.garbageBytes) / Double(report.closedBytes)
            if report.garbageBytes == 0 || fraction < minGarbage {
                report.skipped = report.garbageBytes == 0 ? "no garbage in the closed segments"
                    : "garbage is \(Int((fraction * 100).rounded()))% of the closed segments, below --min-garbage"
                return
            }
            try replace(closed, in: store, with: segments, live: live, report: &report)
        }
        report.durationMicroseconds = monotonicMicroseconds() - started
        return report
    }

    /// The records to keep, as (segment, offset, length, continues-to-set).
    struct Live {
        var records: [(segment: Int, offset: Int, length: Int, continues: Bool)] = []
        var bytesPerSegment: [UInt64] = []
    }

    private static func liveRecords(_ readers: [SegmentReader], _ segments: [UnsafeRawBufferPointer], maxRecord: Int, report: inout MergeReport) throws -> Live {
        var keyed: [UInt64] = []
        var places: [(segment: Int, offset: Int)] = []
        var continues: [Bool] = []
        var puts: [Bool] = []
        for (n, segment) in segments.enumerated() {
            var openBatch: (offset: Int, records: Int)?
            var walker = RecordWalker(segment, mode: .verified, maxRecord: maxRecord)
            while let step = walker.next() {
                switch step {
                case .record(let record, let offset):
                    guard places.count < Int(UInt32.max) else {
                        throw CompactionRefused(message: "\(readers[n].path): more than \(UInt32.max) records to merge at once", cause: .conflict)
                    }
                    keyed.append(UInt64(KeyHash.hash(record.key)) << 32 | UInt64(places.count))
                    places.append((n, offset))
                    continues.append(record.continues)
                    puts.append(record.type == .put)
                    openBatch = record.continues ? (openBatch?.offset ?? offset, (openBatch?.records ?? 0) + 1) : nil
                case .damage(let fault, _):
                    throw SegmentFault(path: readers[n].path, fault: fault)
                case .partial:
                    preconditionFailure("a complete buffer has no partial records")
                }
            }
            if let openBatch {
                throw SegmentFault(path: readers[n].path, fault: RecordFault(offset: UInt64(openBatch.offset), error: .uncommittedBatch(records: openBatch.records)))
            }
        }
        report.recordsRead = places.count
        let (dead, hidesPut) = KeyHash.newest(keyed, isPut: { puts[$0] }) {
            RecordView.verified(segments[places[$0].segment], at: places[$0].offset).key
        }
        func kept(_ number: Int) -> Bool { !dead[number] && (puts[number] || hidesPut[number]) }
        let keptLater = KeyHash.keptLater(continues: continues, kept: kept)
        var live = Live()
        live.bytesPerSegment = [UInt64](repeating: 0, count: segments.count)
        for (number, place) in places.enumerated() {
            let length = RecordView.verified(segments[place.segment], at: place.offset).length
            if kept(number) {
                if !puts[number] { report.keptTombstones += 1 }
                live.records.append((place.segment, place.offset, length, keptLater[number]))
                live.bytesPerSegment[place.segment] += UInt64(length)
            } else if !puts[number] {
                report.droppedTombstones += 1
            } else {
                report.droppedOverwritten += 1
            }
        }
        return live
    }

    /// Steps 4 to 6: write the merged segment, rename it over the highest
    /// closed one, remove the others.
    private static func replace(
        _ closed: [SegmentReader], in store: Store, with segments: [UnsafeRawBufferPointer], live: Live, report: inout MergeReport
    ) throws {
        let target = closed[closed.count - 1]
        let name = target.path.split(separator: "/").last.map(String.init) ?? target.path
        let temporary = store.path(of: ".\(name).tmp-" + String(UInt64.random(in: 0...UInt64.max), radix: 36))
        let file = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
        var renamed = false
        defer {
            file.close()
            if !renamed { try? FileSystem.remove(temporary) }
        }
        try file.adoptAttributes(try target.file.status())
        let out = OutputBuffer(sink: file, capacity: 4 << 20)
        var size: UInt64 = 0
        for record in live.records {
            let source = RecordView.verified(segments[record.segment], at: record.offset)
            let p = try out.room(for: record.length)
            p.copyMemory(from: source.bytes.baseAddress!, byteCount: record.length)
            if source.continues != record.continues {
                _ = Record.setContinues(record.continues, UnsafeMutableRawBufferPointer(start: p, count: record.length))
            }
            out.commit(record.length)
            size += UInt64(record.length)
        }
        try out.flush()
        try file.sync()
        guard rename(temporary, target.path) == 0 else {
            throw SystemError(errno: errno, operation: "rename", path: target.path)
        }
        renamed = true
        try FileSystem.syncDirectory(store.directory)
        report.output = MergeReport.Segment(path: target.path, size: size, liveBytes: size)
        report.recordsWritten = live.records.count
        for reader in closed.dropLast() {
            try FileSystem.remove(reader.path)
            try FileSystem.syncDirectory(store.directory)
            report.removed.append(reader.path)
        }
        report.merged = true
    }
}
