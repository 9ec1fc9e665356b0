// The writers' lock of contract section 3: an exclusive flock(2) on
// `SEG.lock`, a file beside the segment that is created if missing and never
// removed, so that it outlives any rename of the segment itself. Every tool
// that changes a segment holds it, one batch at a time.
//
// It also settles a leftover `SEG.compacting`. A compaction holds an
// exclusive flock on that file for as long as it works on it, and creates it
// under the writers' lock; so whoever holds the writers' lock and can take
// the file's lock knows its compaction is dead, and removes it.
//
// The lock file also carries the *verified end*: which file the segment was
// (device and inode) and the end of its last record that a writer wrote or
// verified. Every writer opens the lock file anyway, so reading 32 bytes from
// it tells the next writer, at no extra cost, how much of the segment's tail
// is unverified: usually nothing. A crash mid-append leaves the verified end
// before the torn record, so the next writer finds the tear and truncates it
// instead of appending after it. The state carries its own CRC-32: a torn or
// foreign state reads as unknown, and unknown only costs a full verification.

import LogFormat
import LogIO
import LogJSON

import Glibc

/// The segment file a writer last knew, the end of its verified records and
/// the last of them (offset and checksum). The file's identity alone does not
/// prove the bytes are those verified (`cp backup SEG` keeps the inode), so
/// the last record is read back, one positioned read, before it is trusted.
public struct VerifiedEnd: Equatable, Sendable {
    public var identity: FileIdentity
    public var end: UInt64
    public var lastOffset: UInt64
    public var lastChecksum: UInt32

    /// `last` is nil only for an empty segment.
    public init(identity: FileIdentity, end: UInt64, last: (offset: UInt64, checksum: UInt32)?) {
        self.identity = identity
        self.end = end
        lastOffset = last?.offset ?? 0
        lastChecksum = last?.checksum ?? 0
    }

    static let size = 44
    private static let tag: UInt32 = 0x6C6B_7632 // "lkv2"

    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VerifiedEnd.size)
        bytes.withUnsafeMutableBytes { out in
            let p = out.baseAddress!
            p.storeBigEndian(VerifiedEnd.tag, at: 0)
            p.storeBigEndian(identity.device, at: 4)
            p.storeBigEndian(identity.inode, at: 12)
            p.storeBigEndian(end, at: 20)
            p.storeBigEndian(lastOffset, at: 28)
            p.storeBigEndian(lastChecksum, at: 36)
            p.storeBigEndian(CRC32.checksum(UnsafeRawBufferPointer(rebasing: out[0..<40])), at: 40)
        }
        return bytes
    }

    init?(decoding bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= VerifiedEnd.size, let p = bytes.baseAddress,
              p.loadBigEndian(UInt32.self, at: 0) == VerifiedEnd.tag,
              p.loadBigEndian(UInt32.self, at: 40) == CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<40]))
        else { return nil }
        identity = FileIdentity(device: p.loadBigEndian(UInt64.self, at: 4), inode: p.loadBigEndian(UInt64.self, at: 12))
        end = p.loadBigEndian(UInt64.self, at: 20)
        lastOffset = p.loadBigEndian(UInt64.self, at: 28)
        lastChecksum = p.loadBigEndian(UInt32.self, at: 36)
    }

    /// True if `file` (`size` bytes) still holds, ending at `end`, the record
    /// this state names: the same file, and its last verified record in place.
    public func holds(in file: FileDescriptor, size: UInt64) throws(SystemError) -> Bool {
        guard try file.identity() == identity, end <= size else { return false }
        guard end > 0 else { return true }
        var header = [UInt8](repeating: 0, count: RecordLayout.headerSize)
        let result: Result<Bool, SystemError> = header.withUnsafeMutableBytes { buffer in
            Result { () throws(SystemError) in
                guard try file.read(at: lastOffset, into: buffer) == buffer.count,
                      let parsed = try? RecordHeader.parse(UnsafeRawBufferPointer(buffer), maxRecord: Int.max)
                else { return false }
                return parsed.checksum == lastChecksum && lastOffset + UInt64(parsed.length) == end
            }
        }
        return try result.get()
    }
}

public final class WritersLock {
    public let segmentPath: String
    private let file: FileDescriptor

    /// Opens (creating if missing) `SEG.lock`. A segment named through a
    /// symlink is the link's target, so the lock is the target's. A symlink
    /// at the lock's own path is refused, never followed: a planted link must
    /// not make a writer create or write a file elsewhere.
    ///
    /// `readOnly` is for tools that only read (logfix --check): the lock
    /// file is opened if it exists, read-only (flock needs no write
    /// permission), and never created.
    public init(segment: String, readOnly: Bool = false) throws(SystemError) {
        segmentPath = FileSystem.followingLink(segment)
        file = try WritersLock.open(segmentPath + ".lock", readOnly: readOnly)
    }

    /// The store's lock, `DIR/LOCK`: one for all its segments, since a writer
    /// that rolls over changes which segment is active. Its verified end is
    /// the active segment's.
    public init(store: Store, readOnly: Bool = false) throws(SystemError) {
        segmentPath = store.directory
        file = try WritersLock.open(store.lockPath, readOnly: readOnly)
    }

    private static func open(_ path: String, readOnly: Bool) throws(SystemError) -> FileDescriptor {
        let flags = readOnly ? O_RDONLY | O_NONBLOCK : O_RDWR | O_CREAT | O_NONBLOCK
        return try FileDescriptor.open(path, flags | O_NOFOLLOW)
    }

    public var compactingPath: String { segmentPath + ".compacting" }

    private static func readVerifiedEnd(_ file: FileDescriptor) -> VerifiedEnd? {
        var bytes = [UInt8](repeating: 0, count: VerifiedEnd.size)
        let count = bytes.withUnsafeMutableBytes { (try? file.read(at: 0, into: $0)) ?? 0 }
        return bytes.withUnsafeBytes { VerifiedEnd(decoding: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    /// With the lock held: the state the last writer left.
    public func verifiedEnd() -> VerifiedEnd? {
        WritersLock.readVerifiedEnd(file)
    }

    /// With the lock held: records the segment's verified end for the next writer.
    public func recordVerifiedEnd(_ state: VerifiedEnd) throws(SystemError) {
        let bytes = state.encoded()
        let result: Result<Void, SystemError> = bytes.withUnsafeBytes { raw in
            Result { () throws(SystemError) in
                var written = 0
                try file.writeAll(raw, at: 0, written: &written)
            }
        }
        try result.get()
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

    /// With the lock held: removes `SEG.compacting` if the compaction that
    /// made it is gone; returns true if one was removed.
    @discardableResult
    public func removeLeftoverCompaction() throws(SystemError) -> Bool {
        let path = compactingPath
        let leftover: FileDescriptor
        do {
            leftover = try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        } catch where error.errno == ENOENT {
            return false
        } catch where error.errno == ELOOP {
            // A symlink is never a compaction's file (those are created with
            // O_EXCL | O_NOFOLLOW): remove the link itself, not its target.
            try FileSystem.remove(path)
            return true
        }
        defer { leftover.close() }
        guard try leftover.tryLockExclusive() else { return false }
        try FileSystem.remove(path)
        try FileSystem.syncDirectory(FileSystem.directory(of: path))
        return true
    }
}
