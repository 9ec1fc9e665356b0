// Turns JSON lines into binary records: parse a line, check the record's
// length against the limit, encode it straight into a batch buffer that the
// caller empties (to stdout, or appended to a segment) between reads.

/// A malformed input line, by its 1-based number.
public struct InputLineError: Error, Sendable {
    public let line: Int
    public let reason: String

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

    /// The longest line worth reading: a record at the limit with every value
    /// byte escaped to six characters, plus room for the other fields.
    public var maxLine: Int { 6 * maxRecord + 65536 }

    /// Encodes every line of `source` into `batch`, calling `afterChunk` after
    /// the lines of each read so the caller can empty the batch. Stops at the
    /// first malformed line with an InputLineError; the records before it are
    /// in `batch`, nothing after it.
    public func encodeLines(from source: FileDescriptor, into batch: ByteBuffer, afterChunk: () throws -> Void) throws {
        let reader = LineReader(source: source, maxLine: maxLine)
        do {
            try reader.forEachLine({ line, number in
                _ = try encode(line: line, number: number, into: batch)
            }, afterChunk: afterChunk)
        } catch let error as LineTooLong {
            throw InputLineError(line: error.line, reason: "line longer than \(error.limit) bytes")
        }
    }

    /// Encodes one line at the end of `batch`; false for a blank line.
    public func encode(line: UnsafeRawBufferPointer, number: Int, into batch: ByteBuffer) throws(InputLineError) -> Bool {
        let parsed: RecordInput?
        do {
            parsed = try parser.parse(line)
        } catch {
            throw InputLineError(line: number, reason: error.message)
        }
        guard let record = parsed else { return false }
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
        return true
    }
}
