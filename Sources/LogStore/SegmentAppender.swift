// Appending to a segment: the writers' protocol of contract section 3.
//
// Every writer takes an exclusive flock(2) on `SEG.lock` (a separate file that
// is created if missing and never removed, so the lock survives the segment
// being renamed over) for one batch at a time: write, optionally fsync,
// unlock. After taking the lock it checks that the path still names the file
// it has open; a compaction may have renamed a new segment into place, and
// appending to the old inode would lose the records.
//
// A store (contract section 5) is appended to the same way under `DIR/LOCK`,
// its highest segment being the one appended to. A run of batches is split
// at batch boundaries: what does not fit in the active segment starts a new
// one, which is created only after the full segment is fsynced, so a torn
// tail can only ever be in the active segment. A batch larger than the
// segment size gets a segment of its own; no batch spans two segments.
//
// A failed write (disk full, file-size limit, I/O error) never leaves half a
// record: the segment is truncated back to the last whole record of the batch
// that made it to the file, and the caller is told which records those were.

import LogFormat
import LogIO
import LogJSON

import Glibc

public enum SyncMode: String, Sendable {
    /// Leave syncing to the kernel (bulk loads).
    case none
    /// fsync once per batch, before its addresses are printed.
    case batch
    /// fsync after every record, before its address is printed.
    case each
}

/// Records appended in one piece: `count` bytes of the caller's records,
/// starting with the first not yet reported, now at `offset` in `segment`.
public struct AppendedRun: Equatable, Sendable {
    public let segment: String
    public let offset: UInt64
    public let count: Int
}

/// An append that failed after the records in `appended` reached their
/// segments (and were synced if asked); nothing after them was kept.
public struct AppendFailure: Error {
    public let appended: [AppendedRun]
    public let error: SystemError
    /// A failure while undoing the partial write, if there was one.
    public var cleanupError: SystemError? = nil

    public var message: String {
        guard let cleanup = cleanupError else { return error.message }
        return "\(error.message); then \(cleanup.operation): \(String(cString: strerror(cleanup.errno)))"
    }
}

/// The segment's unverified tail holds damage followed by valid records: no
/// writer may append after it (the records after it would be unreachable).
public struct TailDamageRefused: Error {
    public let path: String
    public let verification: Verification
    /// What logfix must be given: the segment, or its store.
    public var repairTarget: String

    public var message: String {
        let failure = verification.failure.map { $0.message } ?? "damage"
        let ranges = verification.damaged.map { "\($0.start)-\($0.end)" }.joined(separator: ", ")
        return "\(path): \(failure); \(verification.recordsAfterDamage) valid records follow the damage (damaged bytes \(ranges)); not appending after it: run logfix \(repairTarget)"
    }
}

public final class SegmentAppender {
    /// The segment appended to: for a store, its active segment as last seen.
    public private(set) var path: String
    private var file: FileDescriptor
    private let lock: WritersLock
    /// The store and its segment size, when appending to a store.
    private let store: (store: Store, segmentSize: UInt64)?
    private var activeNumber: UInt64 = 0
    private var checkedLeftover = false
    /// Where the records this appender wrote since its last successful fsync
    /// start, and where its last write ended.
    private var unsynced: Range<UInt64>?
    /// Set by the first failed fsync. Linux reports a failed writeback once
    /// and then drops the dirty pages, so a second fsync would "succeed" over
    /// lost data: after one failure this appender syncs nothing and appends
    /// nothing again.
    private var failedSync: SystemError?
    /// Told, in one line, when a torn tail was truncated before an append.
    public var notice: (String) -> Void = { _ in }

    public init(path: String) throws {
        try Store.refuseStoreSegment(path, use: "append to the store instead (logenc -a \(FileSystem.directory(of: path)))")
        self.path = path
        store = nil
        try FileSystem.makeDirectories(FileSystem.directory(of: path))
        // The segment first: a path that is no segment is refused before
        // anything, a lock file included, is created beside it.
        file = try SegmentAppender.openSegment(path)
        do {
            lock = try WritersLock(segment: path)
        } catch {
            file.close()
            throw error
        }
    }

    /// Appends to a store, creating its directory if missing. The active
    /// segment is chosen (and created in an empty store) under the lock, at
    /// each append.
    public init(store: Store, segmentSize: UInt64) throws {
        try FileSystem.makeDirectories(store.directory)
        lock = try WritersLock(store: store)
        self.store = (store, max(segmentSize, 1))
        // Refuses a store holding foreign files before anything is written.
        let active = try store.segments().last
        let activePath = active?.path ?? store.segmentPath(1)
        activeNumber = active?.number ?? 1
        path = activePath
        file = try lock.withLock { try SegmentAppender.openSegment(activePath) }
    }

    deinit {
        file.close()
    }

    /// Opens the segment for appending (and for verifying its tail), creating
    /// it durably if it is missing. Anything but a regular file is refused at
    /// once: a FIFO would block, a device would swallow the records.
    private static func openSegment(_ path: String) throws -> FileDescriptor {
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL)
        } catch where error.errno == EEXIST {
            return try FileDescriptor.openSegment(path, O_RDWR | O_APPEND)
        }
        do {
            try FileSystem.syncDirectory(FileSystem.directory(of: path))
        } catch {
            file.close()
            throw error
        }
        return file
    }

    /// Appends `records` (whole records only) under the writers' lock and
    /// says where they went: one run for a segment; for a store, one per
    /// segment they went to, in order. Throws AppendFailure for an I/O
    /// failure, TailDamageRefused if the active segment's tail is damaged.
    public func append(_ records: UnsafeRawBufferPointer, sync: Bool) throws -> [AppendedRun] {
        if let failedSync { throw AppendFailure(appended: [], error: failedSync) }
        do {
            try lock.lock()
        } catch {
            throw AppendFailure(appended: [], error: error)
        }
        defer { lock.unlock() }

        var runs: [AppendedRun] = []
        var done = 0
        while done < records.count || runs.isEmpty {
            let remaining = UnsafeRawBufferPointer(rebasing: records[done...])
            let start: UInt64
            var count = remaining.count
            do {
                if store != nil {
                    try selectActiveSegment()
                } else {
                    if !checkedLeftover {
                        try lock.removeLeftoverCompaction()
                        checkedLeftover = true
                    }
                    try reopenIfReplaced()
                }
                start = try verifiedTail()
                if let (_, segmentSize) = store, !remaining.isEmpty {
                    let room = segmentSize > start ? Int(clamping: segmentSize - start) : 0
                    count = SegmentAppender.wholeBatches(remaining, within: room)
                    if count == 0 {
                        if start > 0 {
                            try rollOver()
                            continue
                        }
                        count = SegmentAppender.wholeBatches(remaining, within: 0, atLeastOne: true)
                    }
                }
            } catch let error as SystemError {
                throw AppendFailure(appended: runs, error: error)
            }
            let piece = UnsafeRawBufferPointer(rebasing: remaining[0..<count])
            let written = writeSome(piece)
            if let failure = written.error {
                let kept = SegmentAppender.committedLength(piece, within: written.count)
                var cleanupError: SystemError?
                do {
                    try file.truncate(to: start + UInt64(kept))
                    noteWritten(UnsafeRawBufferPointer(rebasing: piece[0..<kept]), at: start)
                    if sync { try syncFile(lockHeld: true) }
                } catch {
                    cleanupError = error
                }
                if failedSync == nil && kept > 0 { runs.append(AppendedRun(segment: path, offset: start, count: kept)) }
                throw AppendFailure(appended: failedSync == nil ? runs : [], error: failure, cleanupError: cleanupError)
            }
            noteWritten(piece, at: start)
            // A store's segment is fsynced whole when it closes: writing it
            // back as it fills keeps that fsync short, whatever --sync says.
            if store != nil && !sync { _ = file.startWriteback(offset: start, count: count) }
            runs.append(AppendedRun(segment: path, offset: start, count: count))
            done += count
            if records.isEmpty { break }
        }
        if sync {
            do {
                try syncFile(lockHeld: true)
            } catch {
                throw AppendFailure(appended: [], error: error)
            }
        }
        return runs
    }

    /// With the store's lock held: makes the highest segment the one this
    /// appender writes to. Another writer may have rolled over since.
    private func selectActiveSegment() throws {
        guard let (store, _) = store else { return }
        let active = try store.segments().last
        let number = active?.number ?? 1
        let activePath = active?.path ?? store.segmentPath(1)
        if number == activeNumber, activePath == path, active != nil,
           try FileSystem.identity(of: activePath) == (try file.identity()) { return }
        if unsynced != nil { try syncFile(lockHeld: true) }
        let next = try SegmentAppender.openSegment(activePath)
        file.close()
        file = next
        path = activePath
        activeNumber = number
    }

    /// With the store's lock held: closes the full active segment, durable
    /// before its successor exists, and starts the next one.
    private func rollOver() throws {
        guard let (store, _) = store else { return }
        // Every writer's records, not only this one's: a closed segment must
        // never end in a torn tail.
        do {
            try file.sync()
        } catch {
            failedSync = error
            abandonUnsynced()
            throw error
        }
        unsynced = nil
        let number = activeNumber + 1
        let nextPath = store.segmentPath(number)
        let next = try SegmentAppender.openSegment(nextPath)
        file.close()
        file = next
        path = nextPath
        activeNumber = number
        try? lock.recordVerifiedEnd(VerifiedEnd(identity: try file.identity(), end: 0, last: nil))
    }

    /// Makes everything appended so far durable. After a failure, the
    /// records written since the last successful sync are truncated away if
    /// they are still the segment's tail, and every later call fails too.
    public func sync() throws(SystemError) {
        try syncFile(lockHeld: false)
    }

    private func syncFile(lockHeld: Bool) throws(SystemError) {
        if let failedSync { throw failedSync }
        guard unsynced != nil else { return }
        do {
            try file.sync()
            unsynced = nil
        } catch {
            failedSync = error
            if lockHeld {
                abandonUnsynced()
            } else if (try? lock.lock()) != nil {
                abandonUnsynced()
                lock.unlock()
            }
            throw error
        }
    }

    /// After a failed fsync, with the lock held: the records it covered were
    /// never acknowledged; remove them if nothing was appended after them.
    private func abandonUnsynced() {
        guard let range = unsynced,
              (try? FileSystem.identity(of: path)) == (try? file.identity()),
              (try? file.size()) == range.upperBound,
              (try? file.truncate(to: range.lowerBound)) != nil
        else { return }
        unsynced = nil
    }

    /// With the lock held: `records` (whole records) now lie at `start`.
    private func noteWritten(_ records: UnsafeRawBufferPointer, at start: UInt64) {
        // The verified end is the end of the last whole batch: a batch this
        // write leaves open is verified again, with its end, by the next writer.
        var last: (offset: UInt64, checksum: UInt32)?
        var committedEnd = start
        var position = start
        for record in RecordSequence(records) {
            position += UInt64(record.length)
            if !record.continues {
                last = (position - UInt64(record.length), record.checksum)
                committedEnd = position
            }
        }
        guard position > start else { return }
        unsynced = (unsynced?.lowerBound ?? start)..<position
        if let last, let identity = try? file.identity() {
            try? lock.recordVerifiedEnd(VerifiedEnd(identity: identity, end: committedEnd, last: last))
        }
    }

    /// With the lock held: checks the part of the segment no writer has
    /// verified (usually nothing) and returns the size to append at. A torn
    /// tail there was never acknowledged and is truncated; damage followed by
    /// valid records is refused.
    private func verifiedTail() throws -> UInt64 {
        let size = try file.size()
        let identity = try file.identity()
        let recorded = lock.verifiedEnd()
        let known = try recorded.flatMap { try $0.holds(in: file, size: size) ? $0 : nil }
        if let known, known.end == size { return size }
        if recorded?.identity != identity {
            // A segment this writer's predecessors never verified: new, or
            // renamed into place by a compaction whose directory sync may
            // have failed. Its name must be durable before any address in it
            // is printed.
            try FileSystem.syncDirectory(FileSystem.directory(of: path))
        }
        let from = known?.end ?? 0
        // The format's own limit, not --max-record: a record a smaller limit
        // refuses is still a record, never a torn tail to cut.
        let verification = try Recovery.verify(file, size: size, from: from, maxRecord: RecordLayout.maxRecordLength)
        if !verification.isClean {
            guard verification.isTornTail, let failure = verification.failure else {
                throw TailDamageRefused(path: path, verification: verification, repairTarget: store?.store.directory ?? path)
            }
            try file.truncate(to: verification.validEnd)
            try file.sync()
            notice("\(path): truncated a torn tail at offset \(verification.validEnd) (\(size - verification.validEnd) bytes never acknowledged; \(failure.error.reason))")
        }
        let last = verification.lastValid ?? known.flatMap { $0.end > 0 ? ($0.lastOffset, $0.lastChecksum) : nil }
        try? lock.recordVerifiedEnd(VerifiedEnd(identity: identity, end: verification.validEnd, last: last))
        return verification.validEnd
    }

    /// Starts writing appended bytes to disk in the background (see
    /// `FileDescriptor.startWriteback`).
    public func startWriteback(offset: UInt64, count: Int) {
        file.startWriteback(offset: offset, count: count)
    }

    /// A compaction may have renamed a new segment over the path since this
    /// file was opened: follow the path, not the old inode.
    private func reopenIfReplaced() throws {
        let current = try FileSystem.identity(of: path)
        if current != (try file.identity()) {
            // Whatever went to the old file must not depend on the kernel.
            if unsynced != nil { try syncFile(lockHeld: true) }
            file.close()
            file = try SegmentAppender.openSegment(path)
        }
    }

    /// Writes as much as it can; reports how far it got.
    private func writeSome(_ bytes: UnsafeRawBufferPointer) -> (count: Int, error: SystemError?) {
        var written = 0
        do {
            try file.writeAll(bytes, at: nil, written: &written)
        } catch {
            return (written, SystemError(errno: error.errno, operation: "write", path: path))
        }
        return (written, nil)
    }

    /// The length of the longest run of batches at the start of `records`
    /// that fits in `limit` bytes, a batch left open at the end counting as
    /// one: where a store's append may split them.
    /// With `atLeastOne`, the first batch is taken whatever its size.
    static func wholeBatches(_ records: UnsafeRawBufferPointer, within limit: Int, atLeastOne: Bool = false) -> Int {
        var position = 0
        var boundary = 0
        for record in RecordSequence(records) {
            position += record.length
            if position > limit && !(atLeastOne && boundary == 0) { return boundary }
            if !record.continues { boundary = position }
        }
        return position
    }

    /// The length of the longest run of whole batches at the start of
    /// `records` that fits in `limit` bytes: what a failed write may keep.
    static func committedLength(_ records: UnsafeRawBufferPointer, within limit: Int) -> Int {
        var position = 0
        var committed = 0
        for record in RecordSequence(records) {
            guard position + record.length <= limit else { break }
            position += record.length
            if !record.continues { committed = position }
        }
        return committed
    }
}
