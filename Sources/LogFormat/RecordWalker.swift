// The one routine that walks records in a buffer. Every reader uses it: the
// streaming reader of files and pipes, recovery, compaction, the writer's
// address lines. It hands out each record borrowed from the buffer, with its
// offset, and reports damage through one channel, a RecordFault.
//
// Three modes:
// - strict: every check but the checksum; stops at the first damage. For
//   bytes this process encoded, or a scan that skips verification.
// - verified: every check, the checksum too; stops at the first damage.
// - resynchronising: every check; past damage it finds the next valid record
//   and goes on, reporting the damaged range. A record is recognised only at
//   a candidate that parses whole with a matching checksum, and never inside
//   the declared extent of a damaged record whose header is intact (that is
//   its payload: a value may hold an encoded segment), unless the bytes
//   contradict the header: if the damaged record checks out (its checksum
//   matches) with its length field corrected to end where a valid record
//   starts, or a chain of valid records runs across the extent's end, the
//   length field itself is the damage, and trusting it would hide records.
//
// A buffer that is not the whole input (a streaming read) says so with
// `complete: false`: a record cut off by the buffer's end is then `.partial`,
// telling the caller how many bytes it needs, instead of damage.

import Glibc

public struct RecordWalker {
    public enum Mode: Sendable {
        case strict
        case verified
        case resynchronising
    }

    public enum Step {
        case record(RecordView, offset: Int)
        /// Damage at `fault`'s offset; in resynchronising mode it runs up to
        /// `end` (the next valid record, or the end of the buffer).
        case damage(RecordFault, end: Int)
        /// More input is needed: the record at `offset` needs `needed` bytes
        /// from there (only when the buffer is not complete).
        case partial(offset: Int, needed: Int)
    }

    // Inlinable (with its state usable from inlined code): every reader in
    // the layers above calls `next()` once per record.
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline let mode: Mode
    @usableFromInline let maxRecord: Int
    @usableFromInline let complete: Bool
    @usableFromInline let baseOffset: UInt64
    @usableFromInline var nextOffset: Int
    /// Where the next step starts.
    public var position: Int { nextOffset }
    @usableFromInline var stopped = false

    /// Walks `bytes` from `position`; offsets in faults are `baseOffset`
    /// plus the position in `bytes`.
    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, mode: Mode, maxRecord: Int, from position: Int = 0, baseOffset: UInt64 = 0, complete: Bool = true) {
        self.bytes = bytes
        self.mode = mode
        self.maxRecord = maxRecord
        self.complete = complete
        self.baseOffset = baseOffset
        self.nextOffset = position
    }

    @inlinable
    public mutating func next() -> Step? {
        guard !stopped, nextOffset < bytes.count, let base = bytes.baseAddress else { return nil }
        // Pointer arithmetic rather than slices: this runs once per record.
        let rest = UnsafeRawBufferPointer(start: base + nextOffset, count: bytes.count - nextOffset)
        // Only the end of the input can cut a record short; until then, wait
        // for all of it, so errors never depend on read sizes.
        if !complete && rest.count < RecordLayout.headerSize {
            stopped = true
            return .partial(offset: nextOffset, needed: RecordLayout.headerSize)
        }
        do throws(RecordError) {
            let header = try RecordHeader.parse(rest, maxRecord: maxRecord)
            guard header.length <= rest.count else {
                if !complete {
                    stopped = true
                    return .partial(offset: nextOffset, needed: header.length)
                }
                throw .incompletePayload(available: rest.count, length: header.length)
            }
            let record = RecordView(header: header, bytes: UnsafeRawBufferPointer(start: base + nextOffset, count: header.length))
            if mode != .strict { try record.verify() }
            let offset = nextOffset
            nextOffset += header.length
            return .record(record, offset: offset)
        } catch {
            let fault = RecordFault(offset: baseOffset + UInt64(nextOffset), error: error)
            guard mode == .resynchronising else {
                stopped = true
                return .damage(fault, end: bytes.count)
            }
            nextOffset = RecordWalker.nextValidRecord(bytes, after: nextOffset, maxRecord: maxRecord) ?? bytes.count
            return .damage(fault, end: nextOffset)
        }
    }

    /// The offset of the first valid record that starts after the damaged
    /// record at `position` (see the resynchronising mode above).
    public static func nextValidRecord(_ bytes: UnsafeRawBufferPointer, after position: Int, maxRecord: Int) -> Int? {
        let size = bytes.count
        guard let header = try? RecordHeader.parse(UnsafeRawBufferPointer(rebasing: bytes[position...]), maxRecord: maxRecord) else {
            return firstValidRecord(bytes, from: position + 1, before: size, maxRecord: maxRecord)
        }
        let end = position + header.length
        var candidate = position + 1
        while let found = firstValidRecord(bytes, from: candidate, before: min(end, size), maxRecord: maxRecord) {
            // Whole up to `found` but for its length field: `found` is the next record.
            if lengthIsTheDamage(bytes, at: position, header: header, endingAt: found) { return found }
            var chainEnd = found
            while chainEnd < end, let record = validRecord(bytes, at: chainEnd, maxRecord: maxRecord) {
                chainEnd += record.length
            }
            // Records running across the extent's end contradict the length:
            // search byte by byte, as for a header that does not parse.
            if chainEnd > end { return firstValidRecord(bytes, from: position + 1, before: size, maxRecord: maxRecord) }
            candidate = chainEnd
        }
        return end < size ? firstValidRecord(bytes, from: end, before: size, maxRecord: maxRecord) : nil
    }

    /// Whether the record at `position` is whole up to `end` but for a
    /// damaged length field: with the key or value length that `end` implies
    /// put back, its stored checksum matches. A torn record whose value holds
    /// records cut at one of their ends never passes this (its checksum
    /// covers bytes that were never written); a length field hit by a bit
    /// flip in front of valid records does.
    private static func lengthIsTheDamage(_ bytes: UnsafeRawBufferPointer, at position: Int, header: RecordHeader, endingAt end: Int) -> Bool {
        let payload = end - position - RecordLayout.headerSize
        guard payload > 0 else { return false }
        let keyLength = Int(header.keyLength)
        let valueLength = Int(header.valueLength)
        var candidates: [(key: Int, value: Int)] = []
        if payload >= keyLength { candidates.append((keyLength, payload - keyLength)) }
        if payload > valueLength { candidates.append((payload - valueLength, valueLength)) }
        for (key, value) in candidates where key <= Int(UInt32.max) && value <= Int(UInt32.max) {
            var head = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[position..<(position + RecordLayout.checksumOffset)]))
            head.withUnsafeMutableBytes { h in
                h.baseAddress!.storeBigEndian(UInt32(key), at: RecordLayout.keyLengthOffset)
                h.baseAddress!.storeBigEndian(UInt32(value), at: RecordLayout.valueLengthOffset)
            }
            var crc = CRC32()
            crc.update(head)
            crc.update(UnsafeRawBufferPointer(rebasing: bytes[(position + RecordLayout.headerSize)..<end]))
            if crc.value == header.checksum { return true }
        }
        return false
    }

    /// The first offset in `from..<before` where a valid record starts.
    private static func firstValidRecord(_ bytes: UnsafeRawBufferPointer, from: Int, before: Int, maxRecord: Int) -> Int? {
        guard let base = bytes.baseAddress else { return nil }
        let size = bytes.count
        let magicFirst = Int32(RecordLayout.magic >> 24)
        var candidate = from
        while candidate < before && candidate + RecordLayout.headerSize <= size {
            guard let hit = memchr(base + candidate, magicFirst, before - candidate) else { return nil }
            candidate = UnsafeRawPointer(hit) - base
            if validRecord(bytes, at: candidate, maxRecord: maxRecord) != nil { return candidate }
            candidate += 1
        }
        return nil
    }

    private static func validRecord(_ bytes: UnsafeRawBufferPointer, at offset: Int, maxRecord: Int) -> RecordView? {
        guard offset < bytes.count else { return nil }
        return try? RecordView.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...]), maxRecord: maxRecord, verify: true)
    }
}

/// The records of a buffer this process encoded or already verified, in
/// order: a strict walk that ends at the first thing that is not a record.
public struct RecordSequence: Sequence, IteratorProtocol {
    private var walker: RecordWalker

    public init(_ bytes: UnsafeRawBufferPointer) {
        walker = RecordWalker(bytes, mode: .strict, maxRecord: Int.max)
    }

    public mutating func next() -> RecordView? {
        guard case .record(let record, _) = walker.next() else { return nil }
        return record
    }
}
