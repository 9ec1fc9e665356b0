// Key lookups through an index, correct even when the index is stale.
//
// Before the first lookup, each indexed segment is compared with what the
// index recorded, at the cost of one stat and one positioned read:
//
// - same size, and the record at `last_offset` still has `last_checksum`:
//   the index is current (`persisted`);
// - larger, and that record still matches: records were appended since; the
//   tail from the indexed size is scanned and applied on top (`persisted+tail`);
// - smaller, or that record differs: this is not the segment that was indexed
//   (truncated, replaced, compacted); every indexed segment is replayed in
//   full and the index is not used (`replay`).
//
// Segments count in the order the index lists them, as they came in the
// stream it was built from: a record in a later segment is newer than any in
// an earlier one, and within a segment, a later offset is newer. Tail and
// replay follow the same rule, so both give the answer a rebuild would.
//
// An incomplete record at the very end of a segment is a record still being
// appended (readers take no lock) or a torn tail for logfix: either way it
// was never acknowledged, and lookups answer from the records before it.
//
// Nothing is ever written: a stale index stays as it was until it is rebuilt.

import LogFormat
import LogIO
import LogJSON

/// How the store answers lookups.
public enum LookupMode: String, Sendable {
    case persisted
    case persistedWithTail = "persisted+tail"
    case replay
}

/// The newest record of a key, or why there is none.
public enum LookupResult {
    case found(RecordView, segment: String, offset: UInt64)
    case deleted(RecordView, segment: String, offset: UInt64)
    case missing
}

public final class IndexedStore {
    public let index: IndexFile
    public private(set) var mode = LookupMode.persisted
    /// Microseconds spent scanning tails or replaying segments.
    public private(set) var catchUpMicroseconds: UInt64 = 0
    private let readers: [SegmentReader]
    private let maxRecord: Int
    /// Records newer than the index (tail), or all records (replay), by key.
    private var overlay: [[UInt8]: IndexLocation] = [:]
    private let recordBuffer = ByteBuffer()

    /// Opens the index and its segments and brings lookups up to date;
    /// `warn` hears why a segment is replayed.
    public init(indexPath: String, maxRecord: Int, warn: (String) -> Void) throws {
        index = try IndexFile(path: indexPath)
        self.maxRecord = maxRecord
        readers = try index.segments.map { segment in try SegmentReader(path: segment.path) }
        let started = monotonicMicroseconds()
        try catchUp(warn: warn)
        catchUpMicroseconds = monotonicMicroseconds() - started
    }

    private func catchUp(warn: (String) -> Void) throws {
        var tails: [Int] = []
        for (n, segment) in index.segments.enumerated() {
            let reader = readers[n]
            if let reason = try segment.mismatch(reader.file, size: reader.size, maxRecord: maxRecord, buffer: recordBuffer) {
                warn("\(segment.path): \(reason); replaying the segments in full")
                try replay()
                return
            }
            if reader.size > segment.size { tails.append(n) }
        }
        guard !tails.isEmpty else { return }
        mode = .persistedWithTail
        for n in tails { try apply(segment: n, from: index.segments[n].size) }
    }

    private func replay() throws {
        mode = .replay
        overlay = [:]
        for n in index.segments.indices { try apply(segment: n, from: 0) }
    }

    private func apply(segment n: Int, from offset: UInt64) throws {
        try readers[n].scanCommitted(from: offset, maxRecord: maxRecord) { record, offset in
            overlay[Array(record.key)] = IndexLocation(
                type: record.type, segment: n, offset: offset, length: UInt64(record.length), timestamp: record.timestamp)
        }
    }

    /// The number of keys lookups can see: the index's entries, or the keys
    /// found by a replay.
    public var entryCount: UInt64 { mode == .replay ? UInt64(overlay.count) : index.count }

    /// The newest record of `key`. The record is read and verified; it is
    /// borrowed from a buffer the next lookup reuses.
    public func lookup(_ key: UnsafeRawBufferPointer) throws -> LookupResult {
        try read(key, at: try locate(key))
    }

    /// Looks up many keys, answering in the order given: the index is
    /// searched in key order (each search starting where the last ended),
    /// then the records are read in the caller's order.
    public func lookup(_ keys: [UnsafeRawBufferPointer], _ answer: (UnsafeRawBufferPointer, LookupResult) throws -> Void) throws {
        var locations = keys.map { overlaid($0) }
        var searched = keys.indices.filter { needsIndex(locations[$0]) }
        searched.sort { compareBytes(keys[$0], keys[$1]) < 0 }
        var position = 0
        for n in searched { locations[n] = newer(locations[n], try index.find(keys[n], after: &position)) }
        for (n, key) in keys.enumerated() { try answer(key, try read(key, at: locations[n])) }
    }

    /// The location of `key`'s newest record.
    private func locate(_ key: UnsafeRawBufferPointer) throws -> IndexLocation? {
        let overlaid = overlaid(key)
        return needsIndex(overlaid) ? newer(overlaid, try index.find(key)) : overlaid
    }

    /// Whether the index may hold a newer record than `overlaid`: not after a
    /// replay, and not when a tail of the last segment already answered.
    private func needsIndex(_ overlaid: IndexLocation?) -> Bool {
        guard mode != .replay else { return false }
        guard let overlaid else { return true }
        return overlaid.segment < index.segments.count - 1
    }

    private func newer(_ a: IndexLocation?, _ b: IndexLocation?) -> IndexLocation? {
        guard let a else { return b }
        guard let b else { return a }
        return (a.segment, a.offset) >= (b.segment, b.offset) ? a : b
    }

    private func overlaid(_ key: UnsafeRawBufferPointer) -> IndexLocation? {
        overlay.isEmpty ? nil : overlay[Array(key)]
    }

    /// The live records of the keys in `range`, in key order (see
    /// `StoreLookup.range`): the index's entries from one binary search on,
    /// and the records of tails or a replay in the range; newest wins.
    public func range(_ range: KeyRange, _ body: (UnsafeRawBufferPointer, LookupResult) throws -> Void) throws {
        var candidates: [(key: [UInt8], location: IndexLocation)] = []
        if mode != .replay {
            try range.lowest.withUnsafeBytes { lowest in
                try index.forEachEntry(from: lowest) { line in
                    guard range.admits(line.key) else { return false }
                    candidates.append((Array(line.key), try line.location()))
                    return true
                }
            }
        }
        for (key, location) in overlay where key.withUnsafeBytes({ range.contains($0) }) {
            candidates.append((key, location))
        }
        try KeyRange.forEachLive(&candidates, read: read, body)
    }

    private func read(_ key: UnsafeRawBufferPointer, at location: IndexLocation?) throws -> LookupResult {
        guard let location else { return .missing }
        let reader = readers[location.segment]
        let record = try reader.record(at: location.offset, length: location.length, maxRecord: maxRecord, verify: true, buffer: recordBuffer)
        guard record.key.elementsEqual(key), UInt64(record.length) == location.length else {
            throw IndexError(path: index.path, reason: "the entry for a key points at \(reader.path) offset \(location.offset), which holds another record; rebuild the index")
        }
        switch record.type {
        case .put: return .found(record, segment: reader.path, offset: location.offset)
        case .delete: return .deleted(record, segment: reader.path, offset: location.offset)
        }
    }

    /// The total size of the indexed segments as they are now.
    public var segmentBytes: UInt64 { readers.reduce(0) { $0 + $1.size } }
}

extension IndexedSegment {
    /// Why `file` (now `size` bytes) is not the segment this entry describes,
    /// or nil if it is, possibly grown: one positioned read of the record the
    /// index says ends at `size`, which must still carry `last_checksum`.
    public func mismatch(_ file: FileDescriptor, size: UInt64, maxRecord: Int, buffer: ByteBuffer) throws -> String? {
        if size < self.size {
            return "segment is smaller than indexed (\(size) bytes, indexed \(self.size))"
        }
        guard self.size > 0 else { return nil }
        let last: RecordView
        do {
            // Its length is known: one read.
            last = try file.record(at: lastOffset, size: size, length: self.size - min(self.size, lastOffset), maxRecord: maxRecord, verify: true, buffer: buffer)
        } catch let error as SegmentFault {
            return "the last indexed record is gone (\(error.message))"
        } catch let error as OffsetBeyondEnd {
            return "the last indexed record is gone (\(error.message))"
        }
        if last.checksum != lastChecksum || lastOffset + UInt64(last.length) != self.size {
            return "the record at offset \(lastOffset) is not the one indexed (checksum \(Hex.word(last.checksum)), indexed \(Hex.word(lastChecksum)))"
        }
        return nil
    }
}
