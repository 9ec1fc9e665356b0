// Reads newline-terminated lines from a file descriptor in large chunks and
// hands each one out as a borrowed byte range, without the newline. A final
// line without a newline is still a line. A line longer than `maxLine` is an
// error rather than an unbounded allocation.

import Glibc

public struct LineTooLong: Error, Sendable {
    public let line: Int
    public let limit: Int
}

extension LineTooLong {
    public var message: String { "line \(line): longer than the limit of \(limit) bytes (--max-record)" }
}

public final class LineReader {
    private let source: FileDescriptor
    private let maxLine: Int
    private let buffer: ByteBuffer
    private let chunk: Int

    public init(source: FileDescriptor, maxLine: Int, chunk: Int = 1 << 20) {
        self.source = source
        self.maxLine = maxLine
        self.chunk = chunk
        buffer = ByteBuffer(capacity: chunk)
    }

    /// Calls `body` with each line and its 1-based number, until the input
    /// ends or `body` throws; `afterChunk` runs after the lines of each read,
    /// before the next one, which may wait for input. A line stays valid
    /// until the `afterChunk` that follows it returns. `progress` is told the
    /// bytes read so far after each read.
    public func forEachLine(
        _ body: (UnsafeRawBufferPointer, Int) throws -> Void,
        afterChunk: () throws -> Void = {},
        progress: ((UInt64) -> Void)? = nil
    ) throws {
        var number = 0
        var atEnd = false
        var bytesRead: UInt64 = 0
        while !atEnd {
            buffer.reserve(chunk)
            let n = try source.read(into: UnsafeMutableRawBufferPointer(start: buffer.base + buffer.count, count: chunk))
            if n == 0 { atEnd = true }
            buffer.count += n
            bytesRead += UInt64(n)
            if n > 0 { progress?(bytesRead) }
            let base = UnsafeRawPointer(buffer.base)
            var start = 0
            while start < buffer.count {
                guard let newline = memchr(base + start, 0x0A, buffer.count - start) else { break }
                let end = UnsafeRawPointer(newline) - base
                number += 1
                if end - start > maxLine { throw LineTooLong(line: number, limit: maxLine) }
                try body(UnsafeRawBufferPointer(start: base + start, count: end - start), number)
                start = end + 1
            }
            if atEnd && start < buffer.count {
                number += 1
                if buffer.count - start > maxLine { throw LineTooLong(line: number, limit: maxLine) }
                try body(UnsafeRawBufferPointer(start: base + start, count: buffer.count - start), number)
                start = buffer.count
            }
            // Lines handed out are valid until here, the chunk's end.
            try afterChunk()
            buffer.keep(from: start)
            if buffer.count > maxLine { throw LineTooLong(line: number + 1, limit: maxLine) }
        }
    }
}
