// Finding damage in a segment and telling a torn tail from damage in the
// middle.
//
// A crash during an append leaves at most a partial last record: damage after
// which nothing valid follows, a *torn tail*. Truncating it loses nothing that
// was ever acknowledged. Damage followed by valid records is something else
// (a bad disk block, a stray write): truncating there would destroy good
// records, so recovery refuses unless told to salvage or to force.
//
// To see what follows damage, the scan resynchronises: from the byte after
// the failure (or, if the damaged record's header is intact, from the end of
// its declared extent, which is that record's payload and never a record of
// its own) it looks for the magic, and takes a candidate only if its whole
// record parses and its checksum matches. A false resync would need a
// checksum to match by chance over garbage, so "valid records follow" is
// trustworthy, and the answer errs on the side of not truncating.

import LogFormat
import LogIO
import LogJSON

import Glibc

/// A run of bytes that holds no valid record: `start..<end`.
public struct DamagedRange: Equatable, Sendable {
    public var start: UInt64
    public var end: UInt64
}

public struct Verification: Sendable {
    /// Where verification started.
    public var from: UInt64
    /// Valid records from `from` up to the first damage.
    public var validRecords = 0
    /// The end of the last valid record before the first damage.
    public var validEnd: UInt64
    /// That record's offset and checksum, if verification saw one.
    public var lastValid: (offset: UInt64, checksum: UInt32)?
    /// The first damage, if any.
    public var failure: RecordFault?
    /// Every damaged range after the first failure, in order.
    public var damaged: [DamagedRange] = []
    /// Valid records found after the first damage, by resynchronising.
    public var recordsAfterDamage = 0

    public var isClean: Bool { failure == nil }
    /// Damage with nothing valid after it: safe to truncate.
    public var isTornTail: Bool { failure != nil && recordsAfterDamage == 0 }
}

public enum Recovery {
    /// Verifies the first `size` bytes of `file` from `from`. The common case,
    /// a clean segment, is one streaming pass with large reads (on two CPUs
    /// when it is large); only when
    /// damage turns up is the file mapped, to resynchronise past it.
    /// `progress` is told the bytes read from `from` during that pass.
    public static func verify(
        _ file: FileDescriptor, size: UInt64, from: UInt64, maxRecord: Int, progress: ((UInt64) -> Void)? = nil
    ) throws -> Verification {
        var tally = RecordTally()
        var clean = true
        do {
            try file.tally(from: from, size: size, maxRecord: maxRecord, progress: progress, into: &tally)
        } catch is RecordFault {
            clean = false
        }
        let known = Verification(
            from: from, validRecords: tally.records, validEnd: tally.last.map { $0.offset + UInt64($0.length) } ?? from,
            lastValid: tally.last.map { ($0.offset, $0.checksum) })
        if clean { return known }
        // Everything before `validEnd` is verified; classify what follows it.
        return try MappedFile(file, size: size).withBytes { verify($0, continuing: known, maxRecord: maxRecord) }
    }

    /// Verifies `segment` (the whole mapped file) from `from`, resynchronising
    /// past damage to count what follows it.
    public static func verify(_ segment: UnsafeRawBufferPointer, from: UInt64, maxRecord: Int) -> Verification {
        verify(segment, continuing: Verification(from: from, validEnd: from), maxRecord: maxRecord)
    }

    /// Continues `known`, a verification whose records up to `validEnd` are
    /// all valid, through the rest of the mapped segment.
    static func verify(_ segment: UnsafeRawBufferPointer, continuing known: Verification, maxRecord: Int) -> Verification {
        var result = known
        var inDamage = false
        walk(segment, from: known.validEnd, maxRecord: maxRecord) { event in
            switch event {
            case .record(let record, let offset):
                if result.failure == nil {
                    result.validRecords += 1
                    result.validEnd = offset + UInt64(record.length)
                    result.lastValid = (offset, record.checksum)
                } else {
                    result.recordsAfterDamage += 1
                }
                inDamage = false
            case .damage(let fault, let end):
                if result.failure == nil { result.failure = fault }
                if !inDamage { result.damaged.append(DamagedRange(start: fault.offset, end: end)) }
                inDamage = true
            }
        }
        return result
    }

    public enum Event {
        case record(RecordView, offset: UInt64)
        /// Damage at `fault.offset`, up to `end` (the next valid record or the end).
        case damage(RecordFault, end: UInt64)
    }

    /// Calls `body` with every committed record from `from` on and with every
    /// damaged range between them, one event per range. The records of a
    /// batch no record ends (at the end, or before damage) are not records
    /// here: they belong to the damaged range that follows them, which is then
    /// reported from the batch's first record, as an uncommitted batch.
    public static func walk(_ segment: UnsafeRawBufferPointer, from: UInt64, maxRecord: Int, _ body: (Event) -> Void) {
        var walker = RecordWalker(segment, mode: .resynchronising, maxRecord: maxRecord, from: Int(from))
        var batch: [(record: RecordView, offset: Int)] = []
        var damage: (fault: RecordFault, end: Int)?
        func damaged(_ fault: RecordFault, end: Int) {
            let start = batch.first.map { RecordFault(offset: UInt64($0.offset), error: .uncommittedBatch(records: batch.count)) } ?? fault
            batch.removeAll()
            // A range that follows another with no committed record between is one range.
            damage = (damage?.fault ?? start, end)
        }
        while let step = walker.next() {
            switch step {
            case .record(let record, let offset):
                batch.append((record, offset))
                guard !record.continues else { continue }
                if let pending = damage { body(.damage(pending.fault, end: UInt64(pending.end))) }
                damage = nil
                for member in batch { body(.record(member.record, offset: UInt64(member.offset))) }
                batch.removeAll()
            case .damage(let fault, let end):
                damaged(fault, end: end)
            case .partial: preconditionFailure("a complete buffer has no partial records")
            }
        }
        if let first = batch.first {
            damaged(RecordFault(offset: UInt64(first.offset), error: .uncommittedBatch(records: batch.count)), end: segment.count)
        }
        if let pending = damage { body(.damage(pending.fault, end: UInt64(pending.end))) }
    }
}
