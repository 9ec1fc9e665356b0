// The writers' lock of contract section 3: an exclusive flock(2) on
// `SEG.lock`, a file beside the segment that is created if missing and never
// removed, so that it outlives any rename of the segment itself. Every tool
// that changes a segment holds it, one batch at a time.
//
// It also settles a leftover `SEG.compacting`. A compaction holds an
// exclusive flock on that file for as long as it works on it, and creates it
// under the writers' lock; so whoever holds the writers' lock and can take
// the file's lock knows its compaction is dead, and removes it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public final class WritersLock {
    public let segmentPath: String
    private let file: FileDescriptor

    public init(segment: String) throws(SystemError) {
        segmentPath = segment
        file = try FileDescriptor.open(segment + ".lock", O_RDWR | O_CREAT)
    }

    deinit { file.close() }

    public func lock() throws(SystemError) {
        try file.lockExclusive()
    }

    public func unlock() {
        file.unlock()
    }

    /// Runs `body` holding the lock.
    public func withLock<T>(_ body: () throws -> T) throws -> T {
        try lock()
        defer { unlock() }
        return try body()
    }

    public static func compactingPath(_ segment: String) -> String { segment + ".compacting" }

    /// With the lock held: removes `SEG.compacting` if the compaction that
    /// made it is gone; returns true if one was removed.
    @discardableResult
    public func removeLeftoverCompaction() throws(SystemError) -> Bool {
        let path = WritersLock.compactingPath(segmentPath)
        let leftover: FileDescriptor
        do {
            leftover = try FileDescriptor.open(path, O_RDONLY)
        } catch where error.errno == ENOENT {
            return false
        }
        defer { leftover.close() }
        guard try leftover.tryLockExclusive() else { return false }
        try FileSystem.remove(path)
        try FileSystem.syncDirectory(FileSystem.directory(of: path))
        return true
    }
}
