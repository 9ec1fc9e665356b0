// Turns JSON lines into binary records: parse a line, check the record's
// length against the limit, encode it straight into a batch buffer that the
// caller empties (to stdout, or appended to a segment) between reads.

import LogFormat
import LogIO

/// A malformed input line, by its 1-based number.
public struct InputLineError: Error, Sendable {
    public let line: Int
    public let reason: String

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }

    public var message: String { "line \(line): \(reason)" }
}

public final class RecordEncoder {
    private let parser = RecordLineParser()
    private let maxRecord: Int
    private let fixedTimestamp: UInt64?

    public init(maxRecord: Int, fixedTimestamp: UInt64?) {
        self.maxRecord = maxRecord
        self.fixedTimestamp = fixedTimestamp
    }

    /// Encodes every line of `source` into `batch`, calling `afterChunk` after
    /// the lines of each read so the caller can empty the batch. Stops at the
    /// first malformed line with an InputLineError; the records before it are
    /// in `batch`, nothing after it.
    public func encodeLines(from source: FileDescriptor, into batch: ByteBuffer, afterChunk: () throws -> Void) throws {
        try parser.forEachRecord(in: source, maxRecord: maxRecord, { record, number in
            try encode(record, number: number, into: batch)
        }, afterChunk: afterChunk)
    }

    /// Encodes one record at the end of `batch`.
    private func encode(_ record: RecordInput, number: Int, into batch: ByteBuffer) throws(InputLineError) {
        let length = Record.length(keyLength: record.key.count, valueLength: record.value.count)
        guard length <= maxRecord else {
            throw InputLineError(line: number, reason: RecordError.tooLarge(length: UInt64(length), limit: maxRecord).reason)
        }
        batch.reserve(length)
        Record.encode(
            type: record.type, key: record.key, value: record.value,
            timestamp: record.timestamp ?? fixedTimestamp ?? currentTimeMillis(),
            into: UnsafeMutableRawBufferPointer(start: batch.base + batch.count, count: length))
        batch.count += length
    }
}
