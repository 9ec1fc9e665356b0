import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI

/// Where encoded records go: stdout as a stream, or appended to a segment.
protocol RecordSink {
    /// How many bytes of records to gather before writing them out even while
    /// more input is ready.
    var batchLimit: Int { get }
    /// Writes the whole batch out and empties it. `idle` says the tool is about
    /// to wait for input (or has none left): nothing may stay pending.
    func write(_ batch: ByteBuffer, idle: Bool) throws
}

/// Binary records to stdout.
struct StreamSink: RecordSink {
    var batchLimit: Int { 1 << 20 }

    func write(_ batch: ByteBuffer, idle: Bool) throws {
        try FileDescriptor.standardOutput.writeAll(batch.bytes)
        batch.removeAll()
    }
}

/// Records appended to a segment, each batch under the writers' lock, then
/// their addresses printed on stdout.
///
/// With `batch`, a batch's addresses wait until it is fsynced. To keep the
/// disk and the CPU busy at once, the fsync of batch N happens just before
/// batch N+1 is written: N's writeback is started at once and runs while N+1
/// is encoded. When the input is idle or ends, everything is synced and
/// printed before the tool waits. With `each`, every record is its own batch,
/// synced before its address is printed.
final class SegmentSink: RecordSink {
    private let appender: SegmentAppender
    private let sync: SyncMode
    /// Each write is one batch, appended whole under one hold of the lock.
    private let atomic: Bool
    /// The address shape of the segment last appended to, and its path.
    private var shape = RecordJSON.Shape(segment: nil, includeValue: false)
    private var shapeSegment: String?
    /// Address lines of records written but not yet synced.
    private let pending = ByteBuffer(capacity: 1 << 20)
    /// Called before address lines are printed (to erase a progress meter).
    private let beforeOutput: () -> Void

    init(appender: SegmentAppender, sync: SyncMode, atomic: Bool, beforeOutput: @escaping () -> Void) {
        self.appender = appender
        self.beforeOutput = beforeOutput
        self.atomic = atomic
        self.sync = sync
    }

    /// Large enough that a bulk load syncs rarely, small enough that the lock
    /// is held for a fraction of a second.
    var batchLimit: Int { 8 << 20 }

    func write(_ batch: ByteBuffer, idle: Bool) throws {
        defer { batch.removeAll() }
        if atomic {
            try printPending(syncFirst: true)
            if batch.count > 0 { try append(batch.bytes, durable: sync != .none) }
            return
        }
        switch sync {
        case .each:
            for record in RecordSequence(batch.bytes) { try append(record.bytes, durable: true) }
        case .batch:
            try printPending(syncFirst: true)
            if batch.count > 0 { try append(batch.bytes, durable: idle) }
        case .none:
            if batch.count > 0 { try append(batch.bytes, durable: false) }
        }
    }

    /// Appends records and queues their address lines; with `durable`, syncs
    /// and prints them now, otherwise (batch mode) starts their writeback.
    private func append(_ records: UnsafeRawBufferPointer, durable: Bool) throws {
        do {
            let runs = try appender.append(records, sync: durable)
            try queueAddresses(of: records, in: runs)
            if sync == .batch && !durable, let last = runs.last {
                appender.startWriteback(offset: last.offset, count: last.count)
            }
            if durable || sync == .none { try printPending(syncFirst: false) }
        } catch let failure as AppendFailure {
            // The records before the failure are in the segment; report them,
            // synced if the mode promises it, then the error. After a failed
            // fsync the appender refuses to sync again, so nothing it covered
            // is ever reported.
            try queueAddresses(of: records, in: failure.appended)
            try? printPending(syncFirst: sync != .none)
            throw failure
        }
    }

    /// Queues the address lines of the records that went out in `runs`, in
    /// order from the start of `records`.
    private func queueAddresses(of records: UnsafeRawBufferPointer, in runs: [AppendedRun]) throws {
        var start = 0
        for run in runs {
            if shapeSegment != run.segment {
                shape = RecordJSON.Shape(segment: run.segment, includeValue: false)
                shapeSegment = run.segment
            }
            var position = 0
            for record in RecordSequence(UnsafeRawBufferPointer(rebasing: records[start..<start + run.count])) {
                try RecordJSON.write(record, offset: run.offset + UInt64(position), shape: shape, to: pending)
                position += record.length
            }
            start += run.count
        }
    }

    private func printPending(syncFirst: Bool) throws {
        guard pending.count > 0 else { return }
        if syncFirst { try appender.sync() }
        beforeOutput()
        try FileDescriptor.standardOutput.writeAll(pending.bytes)
        pending.removeAll()
    }
}
