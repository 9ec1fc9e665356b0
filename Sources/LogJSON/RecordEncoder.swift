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
    /// With `atomic`, the encoder makes the batches: every record it encodes
    /// carries the continues flag until a commit line (or the end of the
    /// input, `closeBatch`) clears it on the batch's last record. Without it,
    /// each record keeps the flag its line gives, and commit lines are refused.
    private let atomic: Bool
    /// Where, in the caller's batch buffer, the open batch's last record is.
    private var lastRecord: Range<Int>?

    public init(maxRecord: Int, fixedTimestamp: UInt64?, atomic: Bool = false) {
        self.maxRecord = maxRecord
        self.fixedTimestamp = fixedTimestamp
        self.atomic = atomic
    }

    /// Encodes every line of `source` into `batch`, calling `afterChunk` after
    /// the lines of each read so the caller can empty the batch, and, with
    /// `atomic`, `commit` after each commit line closed a batch. Stops at the
    /// first malformed line with an InputLineError; the records before it are
    /// in `batch`, nothing after it. `progress` is told the bytes read so far.
    public func encodeLines(
        from source: FileDescriptor, into batch: ByteBuffer, commit: () throws -> Void = {}, afterChunk: () throws -> Void,
        progress: ((UInt64) -> Void)? = nil
    ) throws {
        try parser.forEachRecord(in: source, maxRecord: maxRecord, { record, number in
            if record.isCommit {
                guard atomic else { throw InputLineError(line: number, reason: "a commit line needs --atomic") }
                closeBatch(in: batch)
                try commit()
            } else {
                try encode(record, number: number, into: batch)
            }
        }, afterChunk: afterChunk, progress: progress)
    }

    /// Ends the open batch in `batch`: its last record loses the continues
    /// flag. The caller's buffer must not have moved the record since.
    public func closeBatch(in batch: ByteBuffer) {
        guard let last = lastRecord else { return }
        Record.setContinues(false, UnsafeMutableRawBufferPointer(start: batch.base + last.lowerBound, count: last.count))
        lastRecord = nil
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
            continues: atomic || record.continues,
            into: UnsafeMutableRawBufferPointer(start: batch.base + batch.count, count: length))
        if atomic { lastRecord = batch.count..<(batch.count + length) }
        batch.count += length
    }
}
