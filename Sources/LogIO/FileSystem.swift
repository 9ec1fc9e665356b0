// Path-level operations: creating directories durably, syncing a directory
// after a name in it changed, and telling whether a path still names the
// file a descriptor has open.

import Glibc

/// Which file a path or descriptor refers to, independent of its name.
public struct FileIdentity: Equatable, Sendable {
    public let device: UInt64
    public let inode: UInt64

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}

public enum FileSystem {
    /// The directory part of a path: "." for a bare name.
    /// The last component of `path` (the path itself if it has none).
    public static func name(of path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    /// The identity of the file at `path`, or nil if nothing is there.
    public static func identity(of path: String) throws(SystemError) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw SystemError(errno: errno, operation: "stat", path: path)
        }
        return FileIdentity(info)
    }

    /// The file a symlink names (resolved to a path without links), or
    /// `path` itself if it is not a symlink or its target does not exist.
    public static func followingLink(_ path: String) -> String {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK,
              let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// True if `path` opens as a terminal (`/dev/tty`, or `/dev/stdout` on one).
    public static func isTerminal(_ path: String) -> Bool {
        guard let file = try? FileDescriptor.open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY) else { return false }
        defer { file.close() }
        return file.isTerminal
    }

    /// True if `path` is a directory (or a symlink to one).
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// The names in a directory, without "." and "..", in no particular order.
    public static func names(in directory: String) throws(SystemError) -> [String] {
        guard let stream = opendir(directory) else {
            throw SystemError(errno: errno, operation: "opendir", path: directory)
        }
        defer { closedir(stream) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw SystemError(errno: errno, operation: "readdir", path: directory) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Checks that `path` is an existing regular file, the only thing a
    /// segment can be: a pipe or a device would read as empty or block.
    public static func requireSegment(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SystemError(errno: errno, operation: "open", path: path) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw notASegment(path) }
    }

    static func notASegment(_ path: String) -> PathRefused {
        PathRefused(message: "\(path): not a regular file; a segment is one")
    }

    /// Refuses an output (a path, or stdout) that names the segment itself.
    public static func requireDistinct(_ output: String, from segment: String, option: String) throws {
        guard let a = try identity(of: output), let b = try identity(of: segment), a == b else { return }
        throw PathRefused(message: "\(segment): \(option) is the segment itself; refusing to overwrite it")
    }

    /// Checks, before anything is changed, that `writeAtomically(path)` can
    /// succeed as far as the file system can tell: its directory exists and
    /// is writable, and what is at `path` is something it may write.
    public static func requireWritableOutput(_ path: String) throws {
        var info = stat()
        if lstat(path, &info) == 0 {
            switch info.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFLNK:
                let target = followingLink(path)
                guard target != path else {
                    throw PathRefused(message: "\(path): a symlink whose target cannot be resolved; refusing to replace it")
                }
                return try requireWritableOutput(target)
            case S_IFIFO, S_IFCHR:
                guard access(path, W_OK) == 0 else { throw SystemError(errno: errno, operation: "open", path: path) }
                return
            default:
                throw PathRefused(message: "\(path): not a regular file, FIFO or character device; refusing to replace it")
            }
        } else if errno != ENOENT {
            throw SystemError(errno: errno, operation: "stat", path: path)
        }
        guard access(directory(of: path), W_OK | X_OK) == 0 else {
            throw SystemError(errno: errno, operation: "open", path: path)
        }
    }

    /// `mkdir -p`, syncing each parent whose entries changed so the new
    /// directories survive a crash.
    public static func makeDirectories(_ path: String) throws(SystemError) {
        if path == "." || path == "/" || path.isEmpty { return }
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw SystemError(errno: ENOTDIR, operation: "mkdir", path: path)
            }
            return
        }
        try makeDirectories(directory(of: path))
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw SystemError(errno: errno, operation: "mkdir", path: path)
        }
        try syncDirectory(directory(of: path))
    }

    /// fsync on a directory, which makes a create, rename or unlink in it durable.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let dir = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY)
        defer { dir.close() }
        try dir.sync()
    }

    /// The absolute, symlink-free form of a path that exists; for one that
    /// does not, the working directory joined with it.
    public static func absolutePath(_ path: String) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            return String(cString: resolved)
        }
        if path.hasPrefix("/") { return path }
        return currentDirectory() + "/" + path
    }

    public static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "." }
        defer { free(cwd) }
        return String(cString: cwd)
    }

    /// `path` (absolute) as seen from `directory` (absolute).
    public static func relativePath(to path: String, from directory: String) -> String {
        let target = path.split(separator: "/", omittingEmptySubsequences: true)
        let base = directory.split(separator: "/", omittingEmptySubsequences: true)
        var common = 0
        while common < target.count && common < base.count && target[common] == base[common] { common += 1 }
        let up = Array(repeating: "..", count: base.count - common)
        let parts = up + target[common...].map(String.init)
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    /// Where an open descriptor's file is, if it is a regular file with a name.
    public static func pathOfRegularFile(_ file: FileDescriptor) -> String? {
        var info = stat()
        guard fstat(file.raw, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(file.raw)", &buffer, Int(PATH_MAX))
        guard n > 0 else { return nil }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasPrefix("/") ? path : nil
    }

    /// Writes a file atomically: a temporary file in the same directory,
    /// fsynced, renamed over `path`, and the directory fsynced. A crash leaves
    /// the old file or the new one, never a part. The replaced file's mode,
    /// owner and group are kept.
    ///
    /// What is at `path` decides how: a regular file (or nothing) is replaced;
    /// a symlink is written through (its target is replaced, the link stays);
    /// a FIFO or character device (`/dev/stdout`, a pipe to a reader) is
    /// written into, since it cannot be replaced; anything else is refused.
    /// The temporary file has an unpredictable name and is created with
    /// O_EXCL and O_NOFOLLOW, so a planted file or symlink never receives it.
    public static func writeAtomically(_ path: String, _ body: (FileDescriptor) throws -> Void) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            guard errno == ENOENT else { throw SystemError(errno: errno, operation: "stat", path: path) }
            return try replaceAtomically(path, keeping: nil, body)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            try replaceAtomically(path, keeping: info, body)
        case S_IFLNK:
            guard let target = realpath(path, nil) else {
                throw PathRefused(message: "\(path): a symlink whose target cannot be resolved; refusing to replace it")
            }
            defer { free(target) }
            let targetPath = String(cString: target)
            guard lstat(targetPath, &info) == 0 || errno == ENOENT else {
                throw SystemError(errno: errno, operation: "stat", path: targetPath)
            }
            try writeAtomically(targetPath, body)
        case S_IFIFO, S_IFCHR:
            // O_NONBLOCK: a FIFO nobody reads fails at once (ENXIO) instead of hanging.
            let file = try FileDescriptor.open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY)
            defer { file.close() }
            try file.setBlocking()
            try body(file)
        default:
            throw PathRefused(message: "\(path): not a regular file, FIFO or character device; refusing to replace it")
        }
    }

    private static func replaceAtomically(_ path: String, keeping original: stat?, _ body: (FileDescriptor) throws -> Void) throws {
        let directory = directory(of: path)
        let name = FileSystem.name(of: path)
        let prefix = (directory == "." ? "" : directory + "/") + ".\(name).tmp-"
        var file: FileDescriptor?
        var temporary = ""
        for _ in 0..<16 where file == nil {
            temporary = prefix + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            do {
                file = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
            } catch where error.errno == EEXIST {
                continue
            } catch {
                // The temporary name is an implementation detail: report the file asked for.
                throw SystemError(errno: error.errno, operation: "open", path: path)
            }
        }
        guard let file else { throw SystemError(errno: EEXIST, operation: "open", path: path) }
        var closed = false
        do {
            if let original { try file.adoptAttributes(original) }
            try body(file)
            try file.sync()
            file.close()
            closed = true
            guard rename(temporary, path) == 0 else { throw SystemError(errno: errno, operation: "rename", path: path) }
            try syncDirectory(directory)
        } catch {
            if !closed { file.close() }
            try? remove(temporary)
            throw error
        }
    }

    public static func remove(_ path: String) throws(SystemError) {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw SystemError(errno: errno, operation: "unlink", path: path)
        }
    }
}

/// What one fstat(2) tells a reader of a segment.
public struct FileStatus: Sendable {
    public let size: UInt64
    public let identity: FileIdentity
    public let isRegularFile: Bool

    public init(_ info: stat) {
        size = UInt64(info.st_size)
        identity = FileIdentity(info)
        isRegularFile = info.st_mode & S_IFMT == S_IFREG
    }
}

extension FileDescriptor {
    /// Opens a segment: without blocking (a FIFO would wait for a writer),
    /// then refusing anything that is not a regular file.
    public static func openSegment(_ path: String, _ flags: Int32) throws -> FileDescriptor {
        try openSegmentWithStatus(path, flags).file
    }

    /// `openSegment`, and what its one fstat found: a reader opening every
    /// segment of a store needs their sizes and identities anyway.
    public static func openSegmentWithStatus(_ path: String, _ flags: Int32) throws -> (file: FileDescriptor, status: FileStatus) {
        let file = try FileDescriptor.open(path, flags | O_NONBLOCK)
        do {
            return (file, try file.requireSegment())
        } catch {
            file.close()
            throw error
        }
    }

    /// The open file's own check of `FileSystem.requireSegment`, for a file
    /// opened without blocking: no race between the check and the open.
    @discardableResult
    public func requireSegment() throws -> FileStatus {
        let status = FileStatus(try status())
        guard status.isRegularFile else { throw FileSystem.notASegment(path) }
        return status
    }

    public func identity() throws(SystemError) -> FileIdentity {
        FileIdentity(try status())
    }

    /// Moves the read position, for sequential reads from an offset.
    public func seek(to offset: UInt64) throws(SystemError) {
        guard lseek(raw, off_t(offset), SEEK_SET) >= 0 else {
            throw SystemError(errno: errno, operation: "seek", path: path)
        }
    }

    /// An exclusive flock(2), waiting for it.
    public func lockExclusive() throws(SystemError) {
        guard retryingInterrupts({ flock(raw, LOCK_EX) }) == 0 else {
            throw SystemError(errno: errno, operation: "flock", path: path)
        }
    }

    /// An exclusive flock(2) if nobody holds one; false if somebody does.
    public func tryLockExclusive() throws(SystemError) -> Bool {
        if retryingInterrupts({ flock(raw, LOCK_EX | LOCK_NB) }) == 0 { return true }
        if errno == EWOULDBLOCK { return false }
        throw SystemError(errno: errno, operation: "flock", path: path)
    }

    public func unlock() {
        _ = flock(raw, LOCK_UN)
    }

    public func status() throws(SystemError) -> stat {
        var info = stat()
        guard fstat(raw, &info) == 0 else { throw SystemError(errno: errno, operation: "stat", path: path) }
        return info
    }

    /// Gives this (new) file the owner, group and mode of the file it will
    /// replace, so a replacement made by root (a cron job) leaves the file
    /// as its owner had it. Owner first: chown clears set-id bits.
    public func adoptAttributes(_ original: stat) throws(SystemError) {
        let current = try status()
        if current.st_uid != original.st_uid || current.st_gid != original.st_gid {
            guard fchown(raw, original.st_uid, original.st_gid) == 0 else {
                throw SystemError(errno: errno, operation: "chown", path: path)
            }
        }
        guard fchmod(raw, original.st_mode & 0o7777) == 0 else {
            throw SystemError(errno: errno, operation: "chmod", path: path)
        }
    }

    /// Clears O_NONBLOCK, set only to open without waiting.
    public func setBlocking() throws(SystemError) {
        let flags = fcntl(raw, F_GETFL)
        guard flags >= 0, fcntl(raw, F_SETFL, flags & ~O_NONBLOCK) == 0 else {
            throw SystemError(errno: errno, operation: "fcntl", path: path)
        }
    }

    /// Asks the kernel to start writing `count` bytes from `offset` to disk
    /// without waiting, so a later fsync finds less to do. Advisory only:
    /// durability still comes from `sync()`. Returns whether the kernel took
    /// the request (a unit test proves the binding below with it).
    @discardableResult
    public func startWriteback(offset: UInt64, count: Int) -> Bool {
        syncFileRange(raw, Int64(offset), Int64(count), 2 /* SYNC_FILE_RANGE_WRITE */) == 0
    }

    /// True if input can be read without waiting.
    public var hasInputReady: Bool {
        var request = pollfd(fd: raw, events: Int16(POLLIN), revents: 0)
        return poll(&request, 1, 0) > 0
    }
}

/// Linux's sync_file_range(2). The C library declares it only under
/// _GNU_SOURCE, which the Swift Glibc module does not set, so it is bound by
/// name rather than through a C target of its own. That is safe because the
/// C signature, `int sync_file_range(int, off64_t, off64_t, unsigned int)`,
/// has only integer arguments of fixed width, which the Swift and C calling
/// conventions pass alike on every Linux ABI; IOTests checks the binding
/// (it starts writeback of a regular file, and fails with EBADF and ESPIPE
/// where the kernel says so).
@_silgen_name("sync_file_range")
private func syncFileRange(_ fd: Int32, _ offset: Int64, _ count: Int64, _ flags: UInt32) -> Int32

/// A path the tool will not use as asked (not a regular file, a dangling
/// link); refused before anything was touched.
public struct PathRefused: Error {
    public let message: String
    public init(message: String) { self.message = message }
}
