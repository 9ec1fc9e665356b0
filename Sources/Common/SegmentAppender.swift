// Appending to a segment: the writers' protocol of contract section 3.
//
// Every writer takes an exclusive flock(2) on `SEG.lock` (a separate file that
// is created if missing and never removed, so the lock survives the segment
// being renamed over) for one batch at a time: write, optionally fsync,
// unlock. After taking the lock it checks that the path still names the file
// it has open; a compaction may have renamed a new segment into place, and
// appending to the old inode would lose the records.
//
// A failed write (disk full, file-size limit, I/O error) never leaves half a
// record: the segment is truncated back to the last whole record of the batch
// that made it to the file, and the caller is told how many bytes that was.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum SyncMode: String, Sendable {
    /// Leave syncing to the kernel (bulk loads).
    case none
    /// fsync once per batch, before its addresses are printed.
    case batch
    /// fsync after every record, before its address is printed.
    case each
}

/// An append that failed after `appended` bytes of whole records reached the
/// segment at `offset`; those records are there (and synced if asked).
public struct AppendFailure: Error {
    public let offset: UInt64
    public let appended: Int
    public let error: SystemError
    /// A failure while undoing the partial write, if there was one.
    public var cleanupError: SystemError? = nil
}

public final class SegmentAppender {
    public let path: String
    private var file: FileDescriptor
    private let lock: WritersLock
    private var checkedLeftover = false

    public init(path: String) throws(SystemError) {
        self.path = path
        try FileSystem.makeDirectories(FileSystem.directory(of: path))
        lock = try WritersLock(segment: path)
        file = try SegmentAppender.openSegment(path)
    }

    deinit {
        file.close()
    }

    /// Opens the segment for appending, creating it durably if it is missing.
    private static func openSegment(_ path: String) throws(SystemError) -> FileDescriptor {
        do {
            let created = try FileDescriptor.open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL)
            try FileSystem.syncDirectory(FileSystem.directory(of: path))
            return created
        } catch where error.errno == EEXIST {
            return try FileDescriptor.open(path, O_WRONLY | O_APPEND)
        }
    }

    /// Appends `records` (whole records only) under the writers' lock and
    /// returns the offset of the first one.
    public func append(_ records: UnsafeRawBufferPointer, sync: Bool) throws(AppendFailure) -> UInt64 {
        do {
            try lock.lock()
        } catch {
            throw AppendFailure(offset: 0, appended: 0, error: error)
        }
        defer { lock.unlock() }

        let start: UInt64
        do {
            if !checkedLeftover {
                try lock.removeLeftoverCompaction()
                checkedLeftover = true
            }
            try reopenIfReplaced()
            start = try file.size()
        } catch {
            throw AppendFailure(offset: 0, appended: 0, error: error)
        }
        let written = writeSome(records)
        if let failure = written.error {
            let kept = SegmentAppender.wholeRecordsLength(records, within: written.count)
            var cleanupError: SystemError?
            do {
                try file.truncate(to: start + UInt64(kept))
                if sync { try file.sync() }
            } catch {
                cleanupError = error
            }
            throw AppendFailure(offset: start, appended: kept, error: failure, cleanupError: cleanupError)
        }
        if sync {
            do {
                try file.sync()
            } catch {
                throw AppendFailure(offset: start, appended: 0, error: error)
            }
        }
        return start
    }

    /// Makes everything appended so far durable.
    public func sync() throws(SystemError) {
        try file.sync()
    }

    /// Starts writing appended bytes to disk in the background (see
    /// `FileDescriptor.startWriteback`).
    public func startWriteback(offset: UInt64, count: Int) {
        file.startWriteback(offset: offset, count: count)
    }

    /// A compaction may have renamed a new segment over the path since this
    /// file was opened: follow the path, not the old inode.
    private func reopenIfReplaced() throws(SystemError) {
        let current = try FileSystem.identity(of: path)
        if current != (try file.identity()) {
            // Whatever went to the old file must not depend on the kernel.
            try file.sync()
            file.close()
            file = try SegmentAppender.openSegment(path)
        }
    }

    /// Writes as much as it can, retrying short writes; reports how far it got.
    private func writeSome(_ bytes: UnsafeRawBufferPointer) -> (count: Int, error: SystemError?) {
        var done = 0
        while done < bytes.count {
            let n = retryingInterrupts { write(file.raw, bytes.baseAddress! + done, bytes.count - done) }
            guard n > 0 else {
                return (done, SystemError(errno: n == 0 ? EIO : errno, operation: "write", path: path))
            }
            done += n
        }
        return (done, nil)
    }

    /// The length of the longest run of whole records at the start of `records`
    /// that fits in `limit` bytes.
    static func wholeRecordsLength(_ records: UnsafeRawBufferPointer, within limit: Int) -> Int {
        var position = 0
        for record in RecordSequence(records) {
            guard position + record.length <= limit else { break }
            position += record.length
        }
        return position
    }
}
