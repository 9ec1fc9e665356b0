// Reading a segment file: a sequential scan from an offset, or one record at
// an address with two positioned reads (header, then the rest). Readers take
// no lock: records are only ever appended, so a reader sees a prefix of the
// segment, at worst ending in a record still being written, which it reports
// as incomplete rather than guessing.

import LogFormat
import LogIO
import LogJSON

import Glibc

/// An address outside the segment.
public struct OffsetBeyondEnd: Error {
    public let path: String
    public let offset: UInt64
    public let size: UInt64

    public var message: String { "\(path): offset \(offset): beyond the end of the segment (\(size) bytes)" }
}

/// A record fault in a named segment: `SEG: offset N: reason`.
public struct SegmentFault: Error, Equatable {
    public let path: String
    public let fault: RecordFault

    public var message: String { "\(path): \(fault.message)" }
}

public final class SegmentReader {
    public let path: String
    public let file: FileDescriptor
    /// The size when the segment was opened; a scan may see more.
    public let size: UInt64
    /// The file opened: a merge may rename another over its path.
    public let identity: FileIdentity

    public init(path: String) throws {
        self.path = path
        let status: FileStatus
        (file, status) = try FileDescriptor.openSegmentWithStatus(path, O_RDONLY)
        size = status.size
        identity = status.identity
    }

    deinit { file.close() }

    /// Like `scan`, but an incomplete record or an uncommitted batch at the
    /// end ends the scan quietly: a reader without the lock sees appends in
    /// progress that way (or a torn tail, which is logfix's to judge).
    ///
    /// The segment is read, never mapped: a writer may truncate a torn tail
    /// meanwhile, and a mapping would read zeros there, or fault.
    public func scanCommitted(from offset: UInt64 = 0, maxRecord: Int, _ body: (RecordView, UInt64) throws -> Void) throws {
        do {
            try scan(from: offset, maxRecord: maxRecord, verify: true, body)
        } catch let fault as SegmentFault {
            switch fault.fault.error {
            case .incompleteHeader, .incompletePayload, .uncommittedBatch: return
            default: throw fault
            }
        }
    }

    /// Calls `body` with every valid record from `offset` on; throws a
    /// SegmentFault at the first damaged one. `progress` is told the bytes
    /// read from `offset` after each read.
    public func scan(
        from offset: UInt64 = 0, maxRecord: Int, verify: Bool, progress: ((UInt64) -> Void)? = nil,
        _ body: (RecordView, UInt64) throws -> Void
    ) throws {
        guard offset <= size else { throw OffsetBeyondEnd(path: path, offset: offset, size: size) }
        do {
            try file.scanRecords(from: offset, size: size, maxRecord: maxRecord, verify: verify, progress: progress, body)
        } catch let fault as RecordFault {
            throw SegmentFault(path: path, fault: fault)
        }
    }

    /// Adds the valid committed records from `offset` on to `tally`; throws
    /// a SegmentFault at the first damaged one, `tally` then holding the
    /// records before it. What `scan` would count, but a large segment is
    /// verified on more than one CPU.
    public func tally(from offset: UInt64 = 0, maxRecord: Int, verify: Bool, progress: ((UInt64) -> Void)? = nil, into tally: inout RecordTally) throws {
        guard verify else {
            return try scan(from: offset, maxRecord: maxRecord, verify: false, progress: progress) { tally.add($0, at: $1) }
        }
        guard offset <= size else { throw OffsetBeyondEnd(path: path, offset: offset, size: size) }
        do {
            try file.tally(from: offset, size: size, maxRecord: maxRecord, progress: progress, into: &tally)
        } catch let fault as RecordFault {
            throw SegmentFault(path: path, fault: fault)
        }
    }

    /// The record at `offset`, read into `buffer` and borrowed from it.
    public func record(at offset: UInt64, length knownLength: UInt64? = nil, maxRecord: Int, verify: Bool, buffer: ByteBuffer) throws -> RecordView {
        try file.record(at: offset, size: size, length: knownLength, maxRecord: maxRecord, verify: verify, buffer: buffer)
    }
}

extension FileDescriptor {
    /// The record at `offset` of this segment (`size` bytes long), read into
    /// `buffer` and borrowed from it. With the record's length known (from an
    /// index), it is one positioned read; otherwise the header is read first
    /// to learn it.
    public func record(
        at offset: UInt64, size: UInt64, length knownLength: UInt64? = nil, maxRecord: Int, verify: Bool, buffer: ByteBuffer
    ) throws -> RecordView {
        guard offset < size else { throw OffsetBeyondEnd(path: path, offset: offset, size: size) }
        func fault(_ error: RecordError) -> SegmentFault {
            SegmentFault(path: path, fault: RecordFault(offset: offset, error: error))
        }
        var want = RecordLayout.headerSize
        if let knownLength, knownLength >= UInt64(RecordLayout.headerSize), knownLength <= UInt64(maxRecord) {
            want = Int(min(knownLength, size - offset))
        }
        buffer.removeAll()
        buffer.reserve(want)
        buffer.count = try read(at: offset, into: UnsafeMutableRawBufferPointer(start: buffer.base, count: want))
        let header: RecordHeader
        do {
            header = try RecordHeader.parse(buffer.bytes, maxRecord: maxRecord)
        } catch {
            throw fault(error)
        }
        // Never more room than the segment holds, whatever the header declares.
        let present = Int(min(UInt64(header.length), size - offset))
        if present > buffer.count {
            let have = buffer.count
            buffer.reserve(present - have)
            let rest = UnsafeMutableRawBufferPointer(start: buffer.base + have, count: present - have)
            buffer.count += try read(at: offset + UInt64(have), into: rest)
        }
        do {
            return try RecordView.parse(buffer.bytes, maxRecord: maxRecord, verify: verify)
        } catch {
            throw fault(error)
        }
    }
}
