// Thin, typed wrappers over the file syscalls logkit uses. Every failure is a
// SystemError carrying errno, the operation and the path, so a message can
// always say which file and why. EINTR is retried here, once, for everyone.

import Glibc

public struct SystemError: Error, Equatable, Sendable {
    public let errno: Int32
    public let operation: String
    public let path: String

    public init(errno: Int32, operation: String, path: String) {
        self.errno = errno
        self.operation = operation
        self.path = path
    }

    /// `PATH: OPERATION: strerror`, e.g. `data/seg: open: No such file or directory`.
    public var message: String {
        "\(path): \(operation): \(String(cString: strerror(errno)))"
    }
}

public struct FileDescriptor: Sendable {
    public let raw: Int32
    /// The name used in error messages: a path, or `<stdin>` / `<stdout>`.
    public let path: String

    public init(raw: Int32, path: String) {
        self.raw = raw
        self.path = path
    }

    public static let standardInput = FileDescriptor(raw: 0, path: "<stdin>")
    public static let standardOutput = FileDescriptor(raw: 1, path: "<stdout>")
    public static let standardError = FileDescriptor(raw: 2, path: "<stderr>")

    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(SystemError) -> FileDescriptor {
        let fd = retryingInterrupts { Glibc.open(path, flags | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "open", path: path) }
        return FileDescriptor(raw: fd, path: path)
    }

    /// The whole of a small file (a cursor, a report), at most `limit` bytes.
    public static func readAll(_ path: String, limit: Int = 1 << 20) throws(SystemError) -> [UInt8] {
        let file = try open(path, O_RDONLY | O_NONBLOCK)
        defer { file.close() }
        // Sized by the file, not the limit: a 64 MiB limit must not cost a
        // 64 MiB buffer for a 5 KB file.
        let size = Int(clamping: try file.size())
        let capacity = size == 0 ? limit : min(limit, size + 1)
        var failure: SystemError?
        let bytes = [UInt8](unsafeUninitializedCapacity: max(capacity, 1)) { buffer, count in
            do throws(SystemError) {
                count = try file.read(at: 0, into: UnsafeMutableRawBufferPointer(buffer))
            } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    public func close() {
        _ = Glibc.close(raw)
    }

    public var isTerminal: Bool { isatty(raw) == 1 }

    /// Reads up to `buffer.count` bytes; 0 means end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        let n = retryingInterrupts { Glibc.read(raw, buffer.baseAddress, buffer.count) }
        guard n >= 0 else { throw SystemError(errno: errno, operation: "read", path: path) }
        return n
    }

    /// Reads until `buffer` is full or the file ends; returns the bytes read.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = retryingInterrupts {
                pread(raw, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            guard n >= 0 else { throw SystemError(errno: errno, operation: "read", path: path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes every byte, retrying short writes.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var written = 0
        try writeAll(bytes, at: nil, written: &written)
    }

    /// The one write loop: writes every byte (at `offset` with pwrite, else
    /// at the file position), retrying short writes. On failure `written`
    /// says how many bytes made it, so a caller can undo exactly those.
    public func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: UInt64?, written: inout Int) throws(SystemError) {
        written = 0
        while written < bytes.count {
            let from = bytes.baseAddress! + written
            let rest = bytes.count - written
            let n = retryingInterrupts {
                if let offset { pwrite(raw, from, rest, off_t(offset) + off_t(written)) } else { Glibc.write(raw, from, rest) }
            }
            // A write that makes no progress would loop forever: report it as EIO.
            guard n > 0 else { throw SystemError(errno: n == 0 ? EIO : errno, operation: "write", path: path) }
            written += n
        }
    }

    public func writeAll(_ text: String) throws(SystemError) {
        try writeAll(Array(text.utf8))
    }

    public func writeAll(_ bytes: [UInt8]) throws(SystemError) {
        let result: Result<Void, SystemError> = bytes.withUnsafeBytes { raw in
            Result { () throws(SystemError) in try writeAll(raw) }
        }
        try result.get()
    }

    public func sync() throws(SystemError) {
        guard retryingInterrupts({ fsync(raw) }) == 0 else {
            throw SystemError(errno: errno, operation: "fsync", path: path)
        }
    }

    public func truncate(to size: UInt64) throws(SystemError) {
        guard retryingInterrupts({ ftruncate(raw, off_t(size)) }) == 0 else {
            throw SystemError(errno: errno, operation: "truncate", path: path)
        }
    }

    public func size() throws(SystemError) -> UInt64 {
        UInt64(try status().st_size)
    }
}

/// Runs a syscall again while it fails with EINTR.
@inline(__always)
func retryingInterrupts<T: FixedWidthInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}

/// The wall clock in milliseconds since the Unix epoch.
public func currentTimeMillis() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return UInt64(now.tv_sec) &* 1000 &+ UInt64(now.tv_nsec / 1_000_000)
}

/// A monotonic clock in microseconds, for durations.
public func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000 &+ UInt64(now.tv_nsec / 1000)
}
