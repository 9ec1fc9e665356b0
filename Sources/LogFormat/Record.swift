// Encoding and validating one record (layout in Format.swift).
//
// Validation runs in the order the bytes arrive: each header field is checked
// as soon as it is present, so a truncated or foreign stream is reported by
// its first wrong field rather than as merely "short". The length limit is
// checked from the header alone, before anything is allocated for the payload.

/// Why a byte range is not a valid record. The offset travels separately.
public enum RecordError: Error, Equatable, Sendable {
    case incompleteHeader(available: Int)
    /// The bytes where the magic should be: four, or fewer at the end of input.
    case badMagic(MagicBytes)
    case unsupportedVersion(UInt8)
    case unknownType(UInt8)
    case unknownFlags(UInt8)
    case nonZeroReserved(UInt8)
    case emptyKey
    case deleteWithValue(valueLength: UInt32)
    case tooLarge(length: UInt64, limit: Int)
    case incompletePayload(available: Int, length: Int)
    case checksumMismatch(stored: UInt32, computed: UInt32)
    case keyNotUTF8
    /// Records with the continues flag that no record ends: a batch that was
    /// never committed (a crash mid-batch), or one broken by damage.
    case uncommittedBatch(records: Int)

    public var reason: String {
        switch self {
        case .incompleteHeader(let available):
            return "incomplete header: \(available) of \(RecordLayout.headerSize) bytes"
        case .badMagic(let found):
            return "bad magic 0x\(found.bytes.map { Hex.digits(UInt64($0), count: 2) }.joined()), expected \(Hex.word(RecordLayout.magic))"
        case .unsupportedVersion(let version):
            return "unsupported version \(version)"
        case .unknownType(let type):
            return "unknown record type \(type)"
        case .unknownFlags(let flags):
            return "unknown flags \(Hex.byte(flags))"
        case .nonZeroReserved(let value):
            return "non-zero reserved byte \(Hex.byte(value))"
        case .emptyKey:
            return "key length 0"
        case .deleteWithValue(let length):
            return "delete record with value length \(length)"
        case .tooLarge(let length, let limit):
            return "record length \(length) exceeds the limit of \(limit) bytes (--max-record)"
        case .incompletePayload(let available, let length):
            return "incomplete record: \(available) of \(length) bytes"
        case .checksumMismatch(let stored, let computed):
            return "checksum mismatch: stored \(Hex.word(stored)), computed \(Hex.word(computed))"
        case .keyNotUTF8:
            return "key is not valid UTF-8"
        case .uncommittedBatch(let records):
            return "uncommitted batch: \(records) record\(records == 1 ? "" : "s") with the continues flag and no record ending the batch"
        }
    }
}

/// The bytes found where a magic should be: four, or fewer at the end of
/// the input. Held in a word, so that a RecordError (and every walker step
/// that carries one) is plain data, copied without reference counting.
public struct MagicBytes: Equatable, Sendable {
    private let word: UInt32
    private let count: UInt8

    public init(_ bytes: some Collection<UInt8>) {
        var word: UInt32 = 0
        for byte in bytes.prefix(4) { word = word << 8 | UInt32(byte) }
        self.word = word
        count = UInt8(min(bytes.count, 4))
    }

    public var bytes: [UInt8] {
        (0..<Int(count)).map { UInt8(truncatingIfNeeded: word >> (8 * UInt32(Int(count) - 1 - $0))) }
    }
}

/// A record error at an absolute byte offset in a stream or segment.
public struct RecordFault: Error, Equatable, Sendable {
    public let offset: UInt64
    public let error: RecordError

    public init(offset: UInt64, error: RecordError) {
        self.offset = offset
        self.error = error
    }

    public var message: String { "offset \(offset): \(error.reason)" }
}

/// The fixed-size part of a record, validated.
public struct RecordHeader: Equatable, Sendable {
    public var type: RecordType
    /// The batch goes on in the next record (contract: batches).
    public var continues: Bool
    public var keyLength: UInt32
    public var valueLength: UInt32
    public var timestamp: UInt64
    public var checksum: UInt32

    public var length: Int { RecordLayout.headerSize + Int(keyLength) + Int(valueLength) }

    /// Validates the header fields present in `bytes` (which may be fewer than
    /// a whole header) and returns the header once all of them are there.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxRecord: Int) throws(RecordError) -> RecordHeader {
        if let header = parseValid(bytes, maxRecord: maxRecord) { return header }
        return try parseReportingFaults(bytes, maxRecord: maxRecord)
    }

    /// The header if all of it is there and valid, from two loads and one
    /// comparison for its first eight bytes (magic, version, type, flags,
    /// reserved): every record of every scan comes this way. Nil sends the
    /// caller to the field-by-field path, which says what is wrong.
    @inline(__always)
    static func parseValid(_ bytes: UnsafeRawBufferPointer, maxRecord: Int) -> RecordHeader? {
        guard bytes.count >= RecordLayout.headerSize, let p = bytes.baseAddress else { return nil }
        let lead = p.loadBigEndian(UInt64.self, at: 0)
        // Magic and version; reserved zero; the flags those known.
        let fixedMask: UInt64 = 0xFFFF_FFFF_FF00_0000 | UInt64(~RecordLayout.knownFlags) << 8 | 0xFF
        let fixed = UInt64(RecordLayout.magic) << 32 | UInt64(RecordLayout.version) << 24
        guard lead & fixedMask == fixed else { return nil }
        let type: RecordType
        switch UInt8(truncatingIfNeeded: lead >> 16) {
        case RecordType.put.rawValue: type = .put
        case RecordType.delete.rawValue: type = .delete
        default: return nil
        }
        let keyLength = p.loadBigEndian(UInt32.self, at: RecordLayout.keyLengthOffset)
        let valueLength = p.loadBigEndian(UInt32.self, at: RecordLayout.valueLengthOffset)
        guard keyLength > 0, type == .put || valueLength == 0,
              UInt64(RecordLayout.headerSize) + UInt64(keyLength) + UInt64(valueLength) <= UInt64(maxRecord)
        else { return nil }
        return RecordHeader(
            type: type, continues: UInt8(truncatingIfNeeded: lead >> 8) & RecordLayout.continuesFlag != 0,
            keyLength: keyLength, valueLength: valueLength,
            timestamp: p.loadBigEndian(UInt64.self, at: RecordLayout.timestampOffset),
            checksum: p.loadBigEndian(UInt32.self, at: RecordLayout.checksumOffset))
    }

    private static func parseReportingFaults(_ bytes: UnsafeRawBufferPointer, maxRecord: Int) throws(RecordError) -> RecordHeader {
        let available = bytes.count
        guard let p = bytes.baseAddress else { throw .incompleteHeader(available: 0) }
        try checkMagic(UnsafeRawBufferPointer(rebasing: bytes.prefix(RecordLayout.versionOffset)))
        guard available >= RecordLayout.versionOffset else { throw .incompleteHeader(available: available) }
        guard available > RecordLayout.versionOffset else { throw .incompleteHeader(available: available) }
        let version = p.load(fromByteOffset: RecordLayout.versionOffset, as: UInt8.self)
        guard version == RecordLayout.version else { throw .unsupportedVersion(version) }
        guard available > RecordLayout.typeOffset else { throw .incompleteHeader(available: available) }
        let rawType = p.load(fromByteOffset: RecordLayout.typeOffset, as: UInt8.self)
        guard let type = RecordType(rawValue: rawType) else { throw .unknownType(rawType) }
        guard available > RecordLayout.flagsOffset else { throw .incompleteHeader(available: available) }
        let flags = p.load(fromByteOffset: RecordLayout.flagsOffset, as: UInt8.self)
        guard flags & ~RecordLayout.knownFlags == 0 else { throw .unknownFlags(flags) }
        guard available > RecordLayout.reservedOffset else { throw .incompleteHeader(available: available) }
        let reserved = p.load(fromByteOffset: RecordLayout.reservedOffset, as: UInt8.self)
        guard reserved == 0 else { throw .nonZeroReserved(reserved) }
        guard available >= RecordLayout.valueLengthOffset else { throw .incompleteHeader(available: available) }
        let keyLength = p.loadBigEndian(UInt32.self, at: RecordLayout.keyLengthOffset)
        guard keyLength > 0 else { throw .emptyKey }
        guard available >= RecordLayout.timestampOffset else { throw .incompleteHeader(available: available) }
        let valueLength = p.loadBigEndian(UInt32.self, at: RecordLayout.valueLengthOffset)
        guard type == .put || valueLength == 0 else { throw .deleteWithValue(valueLength: valueLength) }
        let length = UInt64(RecordLayout.headerSize) + UInt64(keyLength) + UInt64(valueLength)
        guard length <= UInt64(maxRecord) else { throw .tooLarge(length: length, limit: maxRecord) }
        guard available >= RecordLayout.headerSize else { throw .incompleteHeader(available: available) }
        return RecordHeader(
            type: type, continues: flags & RecordLayout.continuesFlag != 0, keyLength: keyLength, valueLength: valueLength,
            timestamp: p.loadBigEndian(UInt64.self, at: RecordLayout.timestampOffset),
            checksum: p.loadBigEndian(UInt32.self, at: RecordLayout.checksumOffset))
    }
}

extension RecordHeader {
    /// Checks the magic, or as much of it as is there: text can never be the
    /// start of a record, however short.
    @inline(__always)
    static func checkMagic(_ bytes: UnsafeRawBufferPointer) throws(RecordError) {
        if bytes.count == RecordLayout.versionOffset {
            if bytes.baseAddress!.loadBigEndian(UInt32.self, at: 0) == RecordLayout.magic { return }
            throw .badMagic(MagicBytes(bytes))
        }
        let expected = withUnsafeBytes(of: RecordLayout.magic.bigEndian) { Array($0) }
        if !bytes.elementsEqual(expected.prefix(bytes.count)) { throw .badMagic(MagicBytes(bytes)) }
    }
}

/// A whole record borrowed from a buffer; valid only while that buffer is.
public struct RecordView {
    public let header: RecordHeader
    /// The record's bytes, header included.
    public let bytes: UnsafeRawBufferPointer

    public var type: RecordType { header.type }
    public var continues: Bool { header.continues }
    public var length: Int { bytes.count }
    public var timestamp: UInt64 { header.timestamp }
    public var checksum: UInt32 { header.checksum }

    public var key: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[RecordLayout.headerSize..<(RecordLayout.headerSize + Int(header.keyLength))])
    }

    public var value: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[(RecordLayout.headerSize + Int(header.keyLength))...])
    }

    public init(header: RecordHeader, bytes: UnsafeRawBufferPointer) {
        self.header = header
        self.bytes = bytes
    }

    /// Parses the record at the start of `bytes`; the whole record must be there.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxRecord: Int, verify: Bool) throws(RecordError) -> RecordView {
        let header = try RecordHeader.parse(bytes, maxRecord: maxRecord)
        guard bytes.count >= header.length else {
            throw .incompletePayload(available: bytes.count, length: header.length)
        }
        let record = RecordView(header: header, bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<header.length]))
        if verify { try record.verify() }
        return record
    }

    /// The record at `offset` of bytes already walked in verified mode. Only
    /// for those: its header is read, not checked again (compaction looks
    /// records up this way a few times each, and checking cost a quarter of
    /// its time); only the bounds are, so a programming error stops the tool
    /// rather than reading past the buffer.
    public static func verified(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> RecordView {
        precondition(offset >= 0 && offset + RecordLayout.headerSize <= bytes.count, "offset \(offset) of verified bytes: no header")
        let p = bytes.baseAddress! + offset
        let flags = p.load(fromByteOffset: RecordLayout.flagsOffset, as: UInt8.self)
        let header = RecordHeader(
            type: p.load(fromByteOffset: RecordLayout.typeOffset, as: UInt8.self) == RecordType.delete.rawValue ? .delete : .put,
            continues: flags & RecordLayout.continuesFlag != 0,
            keyLength: p.loadBigEndian(UInt32.self, at: RecordLayout.keyLengthOffset),
            valueLength: p.loadBigEndian(UInt32.self, at: RecordLayout.valueLengthOffset),
            timestamp: p.loadBigEndian(UInt64.self, at: RecordLayout.timestampOffset),
            checksum: p.loadBigEndian(UInt32.self, at: RecordLayout.checksumOffset))
        precondition(offset + header.length <= bytes.count, "offset \(offset) of verified bytes: record past the end")
        return RecordView(header: header, bytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + header.length)]))
    }

    /// Recomputes the checksum and checks that the key is UTF-8. Pointer
    /// arithmetic, not slices: every record of a verified scan comes here,
    /// and the header already bounds the key within `bytes`.
    public func verify() throws(RecordError) {
        let computed = Record.checksum(of: bytes)
        guard computed == header.checksum else { throw .checksumMismatch(stored: header.checksum, computed: computed) }
        let keyLength = Int(header.keyLength)
        guard UTF8Validation.validPrefixLength(bytes.baseAddress! + RecordLayout.headerSize, keyLength) == keyLength else {
            throw .keyNotUTF8
        }
    }
}

public enum Record {
    /// The checksum of a whole record in place: the header before the checksum
    /// field, then everything after it.
    @inline(__always)
    public static func checksum(of record: UnsafeRawBufferPointer) -> UInt32 {
        precondition(record.count >= RecordLayout.headerSize)
        return CRC32.checksum(record, skipping: RecordLayout.checksumOffset..<RecordLayout.headerSize)
    }

    public static func length(keyLength: Int, valueLength: Int) -> Int {
        RecordLayout.headerSize + keyLength + valueLength
    }

    /// Writes one complete record into `out`, which must hold exactly
    /// `length(keyLength:valueLength:)` bytes, and returns its checksum.
    @discardableResult
    public static func encode(
        type: RecordType, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
        timestamp: UInt64, continues: Bool = false, into out: UnsafeMutableRawBufferPointer
    ) -> UInt32 {
        let p = out.baseAddress!
        writeHeader(type: type, keyLength: key.count, valueLength: value.count, timestamp: timestamp, continues: continues, at: p)
        if key.count > 0 { (p + RecordLayout.headerSize).copyMemory(from: key.baseAddress!, byteCount: key.count) }
        if value.count > 0 {
            (p + RecordLayout.headerSize + key.count).copyMemory(from: value.baseAddress!, byteCount: value.count)
        }
        return seal(UnsafeMutableRawBufferPointer(start: p, count: RecordLayout.headerSize + key.count + value.count))
    }

    /// Writes a header with a zero checksum; `seal` fills it in once the key
    /// and value follow it.
    public static func writeHeader(type: RecordType, keyLength: Int, valueLength: Int, timestamp: UInt64, continues: Bool = false, at p: UnsafeMutableRawPointer) {
        p.storeBigEndian(RecordLayout.magic, at: RecordLayout.magicOffset)
        p.storeBytes(of: RecordLayout.version, toByteOffset: RecordLayout.versionOffset, as: UInt8.self)
        p.storeBytes(of: type.rawValue, toByteOffset: RecordLayout.typeOffset, as: UInt8.self)
        p.storeBytes(of: continues ? RecordLayout.continuesFlag : 0, toByteOffset: RecordLayout.flagsOffset, as: UInt8.self)
        p.storeBytes(of: UInt8(0), toByteOffset: RecordLayout.reservedOffset, as: UInt8.self)
        p.storeBigEndian(UInt32(truncatingIfNeeded: keyLength), at: RecordLayout.keyLengthOffset)
        p.storeBigEndian(UInt32(truncatingIfNeeded: valueLength), at: RecordLayout.valueLengthOffset)
        p.storeBigEndian(timestamp, at: RecordLayout.timestampOffset)
        p.storeBigEndian(UInt32(0), at: RecordLayout.checksumOffset)
    }

    /// Sets or clears a complete record's continues flag in place, and seals
    /// it again; returns the new checksum.
    @discardableResult
    public static func setContinues(_ continues: Bool, _ record: UnsafeMutableRawBufferPointer) -> UInt32 {
        record.baseAddress!.storeBytes(of: continues ? RecordLayout.continuesFlag : 0, toByteOffset: RecordLayout.flagsOffset, as: UInt8.self)
        return seal(record)
    }

    /// Computes and stores the checksum of a complete record in place.
    @discardableResult
    public static func seal(_ record: UnsafeMutableRawBufferPointer) -> UInt32 {
        let crc = checksum(of: UnsafeRawBufferPointer(record))
        record.baseAddress!.storeBigEndian(crc, at: RecordLayout.checksumOffset)
        return crc
    }

    /// A whole record as a new array; for tests and one-off records.
    public static func encode(type: RecordType, key: [UInt8], value: [UInt8], timestamp: UInt64, continues: Bool = false) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length(keyLength: key.count, valueLength: value.count))
        key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                out.withUnsafeMutableBytes { o in
                    _ = encode(type: type, key: k, value: v, timestamp: timestamp, continues: continues, into: o)
                }
            }
        }
        return out
    }
}

// Inlinable: other modules' hot loops read headers with these, and a generic
// call across the module boundary would look up type metadata every time.
extension UnsafeRawPointer {
    @inlinable @inline(__always)
    package func loadBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawPointer {
    @inlinable @inline(__always)
    package func storeBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
    }
}

public enum Hex {
    /// `0x` and eight lowercase digits: how checksums and magics are printed.
    public static func word(_ value: UInt32) -> String { "0x" + digits(UInt64(value), count: 8) }

    /// The value of one hex digit, either case, or nil.
    @inline(__always)
    package static func digitValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `0x` and exactly eight hex digits, the form `word` prints.
    public static func parseWord(_ text: UnsafeRawBufferPointer) -> UInt32? {
        guard text.count == 10, text[0] == UInt8(ascii: "0"), text[1] == UInt8(ascii: "x") else { return nil }
        var value: UInt32 = 0
        for k in 2..<10 {
            guard let digit = digitValue(text[k]) else { return nil }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    public static func parseWord(_ text: String) -> UInt32? {
        Array(text.utf8).withUnsafeBytes { parseWord($0) }
    }

    static func digits(_ value: UInt64, count: Int) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: max(0, count - s.count)) + s
    }
}

extension Hex {
    /// `0x` and two digits.
    public static func byte(_ value: UInt8) -> String { "0x" + digits(UInt64(value), count: 2) }

    /// A byte as itself if it is printable ASCII, else as `0xNN`.
    public static func printable(_ value: UInt8) -> String {
        (0x21...0x7E).contains(value) ? String(UnicodeScalar(value)) : byte(value)
    }
}
