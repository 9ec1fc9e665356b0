import Common

/// Where encoded records go: stdout as a stream, or appended to a segment.
protocol RecordSink {
    /// How many bytes of records to gather before writing them out even while
    /// more input is ready.
    var batchLimit: Int { get }
    /// Writes the whole batch out and empties it.
    func write(_ batch: ByteBuffer) throws
}

/// Binary records to stdout.
struct StreamSink: RecordSink {
    var batchLimit: Int { 1 << 20 }

    func write(_ batch: ByteBuffer) throws {
        try FileDescriptor.standardOutput.writeAll(batch.bytes)
        batch.removeAll()
    }
}

/// Records appended to a segment, each batch under the writers' lock, then
/// their addresses printed on stdout. With `each`, every record is its own
/// batch, synced before its address is printed.
final class SegmentSink: RecordSink {
    private let appender: SegmentAppender
    private let sync: SyncMode
    private let addresses = OutputBuffer(sink: .standardOutput)
    private let shape: RecordJSON.Shape

    init(path: String, sync: SyncMode) throws(SystemError) {
        appender = try SegmentAppender(path: path)
        self.sync = sync
        shape = RecordJSON.Shape(segment: path, includeValue: false)
    }

    /// Large enough that a bulk load syncs rarely, small enough that the lock
    /// is held for a fraction of a second.
    var batchLimit: Int { 8 << 20 }

    func write(_ batch: ByteBuffer) throws {
        defer { batch.removeAll() }
        if sync == .each {
            var position = 0
            for record in RecordSequence(batch.bytes) {
                try append(UnsafeRawBufferPointer(rebasing: batch.bytes[position..<(position + record.length)]))
                position += record.length
            }
        } else if batch.count > 0 {
            try append(batch.bytes)
        }
    }

    private func append(_ records: UnsafeRawBufferPointer) throws {
        do {
            let offset = try appender.append(records, sync: sync != .none)
            try printAddresses(of: records, at: offset)
        } catch let failure as AppendFailure {
            try printAddresses(of: UnsafeRawBufferPointer(rebasing: records[0..<failure.appended]), at: failure.offset)
            throw failure
        }
    }

    private func printAddresses(of records: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var position = 0
        for record in RecordSequence(records) {
            try RecordJSON.write(record, offset: offset + UInt64(position), shape: shape, to: addresses)
            position += record.length
        }
        try addresses.flush()
    }
}
