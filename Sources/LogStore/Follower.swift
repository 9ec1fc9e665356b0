// Following a segment: every committed record, then each one as it is
// committed, like `tail -f`, resumable from a cursor.
//
// A cursor names the last record a follower handed on, by segment, offset,
// length and checksum: one JSON line,
//
//   {"segment":"data/seg","offset":90,"length":30,"checksum":"0x4355b4c2"}
//
// Resuming checks, with one positioned read, that the record is still there;
// if the segment was compacted meanwhile it is not, and the follower starts
// the segment again from its first record: records may be seen twice, never
// missed, and since compaction keeps each key's newest record, never an older
// value after a newer one.
//
// Only committed records are handed on (the streaming reader holds a batch
// until its last record), and an incomplete record or batch at the end is
// waited for, not reported. A segment renamed over while followed (logpack
// --in-place) is read to its end, then the follower stops with FollowStopped.

import LogFormat
import LogIO
import LogJSON
import Glibc

public struct Cursor: Equatable, Sendable {
    public var segment: String
    public var offset: UInt64
    public var length: UInt64
    public var checksum: UInt32

    public init(segment: String, offset: UInt64, length: UInt64, checksum: UInt32) {
        self.segment = segment
        self.offset = offset
        self.length = length
        self.checksum = checksum
    }

    /// The cursor as its one JSON line (with the newline).
    public var line: String {
        "{\"segment\":\(String(decoding: JSONText.quoted(segment), as: UTF8.self)),\"offset\":\(offset),\"length\":\(length),\"checksum\":\"\(Hex.word(checksum))\"}\n"
    }

    public init(parsing text: String) throws(CursorError) {
        let trimmed = text.hasSuffix("\n") ? String(text.dropLast()) : text
        guard let document = try? JSONValue.parse(trimmed),
              let segment = document["segment"]?.string, let offset = document["offset"]?.uint64,
              let length = document["length"]?.uint64, let text = document["checksum"]?.string,
              let checksum = Hex.parseWord(text)
        else { throw CursorError(reason: "not a cursor (one JSON line with segment, offset, length and checksum)") }
        self.init(segment: segment, offset: offset, length: length, checksum: checksum)
    }
}

public struct CursorError: Error, Sendable {
    public let reason: String
    public var message: String { "cursor: \(reason)" }
}

/// The followed segment was replaced in place (compacted): the follower read
/// the old file to its end and stops; resuming from its cursor goes on.
public struct FollowStopped: Error, Sendable {
    public let path: String
    public var message: String {
        "\(path): replaced (compacted) while followed; every record of the old file was printed; resume from the cursor (--cursor-file or --after): the new file is followed from its start, so records may be seen again"
    }
}

public final class Follower {
    public let path: String
    private let maxRecord: Int
    private let verify: Bool
    private var file: FileDescriptor
    private let watch: FileWatch
    /// Where the next committed record starts.
    public private(set) var position: UInt64 = 0
    /// The last record handed on, as a cursor.
    public private(set) var cursor: Cursor?

    public init(path: String, after: Cursor?, maxRecord: Int, verify: Bool, warn: (String) -> Void) throws {
        self.path = path
        self.maxRecord = maxRecord
        self.verify = verify
        file = try FileDescriptor.openSegment(path, O_RDONLY)
        watch = try FileWatch(path: path)
        guard let after else { return }
        let size = try file.size()
        let buffer = ByteBuffer()
        if let record = try? file.record(at: after.offset, size: size, maxRecord: maxRecord, verify: true, buffer: buffer),
           record.checksum == after.checksum, UInt64(record.length) == after.length {
            position = after.offset + after.length
            cursor = after
        } else {
            warn("\(path): the cursor's record (offset \(after.offset), \(Hex.word(after.checksum))) is not there (compacted?); following from the start, records may be seen again")
        }
    }

    /// Follows `path` from `position`, which must be a record boundary: for
    /// a store's follower, moving on to its next segment.
    init(path: String, position: UInt64, maxRecord: Int, verify: Bool) throws {
        self.path = path
        self.maxRecord = maxRecord
        self.verify = verify
        self.position = position
        file = try FileDescriptor.openSegment(path, O_RDONLY)
        watch = try FileWatch(path: path)
    }

    deinit { file.close() }

    /// True if the path still names the file being read.
    var isInPlace: Bool {
        get throws { try FileSystem.identity(of: path) == (try file.identity()) }
    }

    /// Sleeps until the segment or its directory changes.
    func waitForChange(timeoutMilliseconds: Int32) throws -> FileWatch.Wake {
        try watch.wait(timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Judges a fault `readCommitted` returned: a write in progress can look
    /// damaged for a moment, but damage that stays as it is while the file
    /// does not grow is damage (thrown).
    func judge(_ fault: RecordFault?, suspect: inout (fault: RecordFault, size: UInt64)?) throws {
        guard let fault else {
            suspect = nil
            return
        }
        let size = try file.size()
        if let suspect, suspect.fault == fault, suspect.size == size { throw SegmentFault(path: path, fault: fault) }
        suspect = (fault, size)
    }

    /// Hands on every committed record from the current position on, then
    /// sleeps until the segment changes, forever. `delivered` runs after each
    /// read's records were handed on (to flush output and save the cursor).
    /// Returns when standard output closes; throws FollowStopped when the
    /// segment is replaced, or the first damage that is not a tail in progress.
    public func run(_ body: (RecordView, UInt64) throws -> Void, delivered: () throws -> Void) throws {
        var suspect: (fault: RecordFault, size: UInt64)?
        while true {
            let fault = try readCommitted(body)
            try delivered()
            try judge(fault, suspect: &suspect)
            if try !isInPlace {
                // No writer appends to the old file once it is replaced, so
                // one more read gets the records appended before the swap.
                _ = try readCommitted(body)
                try delivered()
                throw FollowStopped(path: path)
            }
            if try watch.wait(timeoutMilliseconds: suspect == nil ? -1 : 1000) == .outputClosed { return }
        }
    }

    /// Reads committed records from `position` to the current end. Returns
    /// a fault that is not an incomplete tail (a record or batch still being
    /// written), for the caller to judge.
    func readCommitted(_ body: (RecordView, UInt64) throws -> Void) throws -> RecordFault? {
        try file.seek(to: position)
        let reader = RecordReader(source: file, maxRecord: maxRecord, verify: verify, startOffset: position)
        do {
            try reader.forEach { record, offset in
                try body(record, offset)
                position = offset + UInt64(record.length)
                cursor = Cursor(segment: path, offset: offset, length: UInt64(record.length), checksum: record.checksum)
            }
        } catch let fault as RecordFault {
            switch fault.error {
            case .incompleteHeader, .incompletePayload, .uncommittedBatch: return nil
            default: return fault
            }
        }
        return nil
    }
}

/// Follows a store (contract section 7): its segments in order, moving to the
/// next segment once one exists (a writer fsyncs a segment and never appends
/// to it again before it creates the next, so one more read of the old one
/// gets all of it), sleeping on file and directory events while nothing is
/// appended.
///
/// A merge (`logpack DIR`) renames one merged segment over the highest closed
/// segment and removes the others: everything it keeps of the segments up to
/// number N lies at or below N, holding each key's newest closed record. So a
/// follower that finished segment N simply moves to the next segment above
/// N that still exists, whatever was merged meanwhile: it never misses a
/// record, and what it meets again is never older than what it printed.
public final class StoreFollower {
    public let store: Store
    private let maxRecord: Int
    private let verify: Bool
    private var current: Follower
    private var number: UInt64

    /// Starts after `after` if its record is still in place. If a merge
    /// replaced or removed its segment, starts at the first segment from its
    /// number on, from the start: records may be seen again, never missed.
    /// An empty store is waited for.
    public init(store: Store, after: Cursor?, maxRecord: Int, verify: Bool, warn: @escaping (String) -> Void) throws {
        self.store = store
        self.maxRecord = maxRecord
        self.verify = verify
        var wanted: UInt64 = 0
        var resumed: (follower: Follower, number: UInt64)?
        if let after {
            let name = FileSystem.name(of: after.segment)
            wanted = Store.segmentNumber(name) ?? 0
            // The follower that checked the cursor's record keeps the file it
            // checked: opening the name again could open a merge's new file.
            while resumed == nil, let segment = try store.segments().first(where: { $0.number == wanted }) {
                do {
                    let follower = try Follower(path: segment.path, after: after, maxRecord: maxRecord, verify: verify) { _ in }
                    guard follower.cursor == after else { break }
                    resumed = (follower, segment.number)
                } catch let error as SystemError where error.errno == ENOENT {
                    continue
                }
            }
            if resumed == nil {
                warn("\(after.segment): the cursor's record (offset \(after.offset), \(Hex.word(after.checksum))) is not there (merged?); following \(store.directory) from the start of the segment that holds it now, records may be seen again")
            }
        }
        if let resumed {
            current = resumed.follower
            number = resumed.number
            cursor = after
        } else {
            (current, number) = try StoreFollower.open(store, from: wanted, maxRecord: maxRecord, verify: verify)
            cursor = nil
        }
    }

    /// A follower of the first segment numbered `from` or more, from its
    /// start; waits for one if there is none, and lists again if a merge
    /// removes it before it is opened.
    private static func open(_ store: Store, from: UInt64, maxRecord: Int, verify: Bool) throws -> (Follower, UInt64) {
        while true {
            let found = try segment(in: store, from: from)
            do {
                return (try Follower(path: found.path, position: 0, maxRecord: maxRecord, verify: verify), found.number)
            } catch let error as SystemError where error.errno == ENOENT {
                continue
            }
        }
    }

    /// The first segment numbered `from` or more, waited for if there is none.
    private static func segment(in store: Store, from: UInt64) throws -> StoreSegment {
        while true {
            if let found = try store.segments().first(where: { $0.number >= from }) { return found }
            let watch = try FileWatch(directory: store.directory)
            if let found = try store.segments().first(where: { $0.number >= from }) { return found }
            if try watch.wait() == .outputClosed { throw SystemError(errno: EPIPE, operation: "write", path: "standard output") }
        }
    }

    /// The last record handed on, as a cursor.
    public private(set) var cursor: Cursor?

    /// Hands on every committed record, segment after segment, then sleeps
    /// until more are committed, forever. Returns when standard output closes.
    public func run(_ body: (RecordView, UInt64, String) throws -> Void, delivered: () throws -> Void) throws {
        var suspect: (fault: RecordFault, size: UInt64)?
        while true {
            let fault = try read(body)
            try delivered()
            if try store.segments().contains(where: { $0.number > number }) {
                // Closed, and written by no one again: one more read gets the
                // rest, and damage there is damage.
                if let fault = try read(body) { throw SegmentFault(path: current.path, fault: fault) }
                try delivered()
                try moveOn()
                suspect = nil
                continue
            }
            try current.judge(fault, suspect: &suspect)
            if try current.waitForChange(timeoutMilliseconds: suspect == nil ? -1 : 1000) == .outputClosed { return }
        }
    }

    /// Opens the next segment above the current one; a merge may remove it
    /// between the listing and the open, and then the listing is taken again.
    private func moveOn() throws {
        while true {
            guard let next = try store.segments().first(where: { $0.number > number }) else { return }
            do {
                current = try Follower(path: next.path, position: 0, maxRecord: maxRecord, verify: verify)
                number = next.number
                return
            } catch let error as SystemError where error.errno == ENOENT {
                continue
            }
        }
    }

    private func read(_ body: (RecordView, UInt64, String) throws -> Void) throws -> RecordFault? {
        let path = current.path
        let fault = try current.readCommitted { record, offset in try body(record, offset, path) }
        if current.cursor != nil { cursor = current.cursor }
        return fault
    }
}
