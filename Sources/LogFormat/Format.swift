// The logkit record format, version 1.
//
// A segment is a plain concatenation of records: no file header, no padding.
// All integers are big-endian. One record is a fixed 28-byte header followed by
// the key and the value:
//
//   offset width field         rule
//        0     4 magic         89 4C 4F 47 (0x89 then "LOG")
//        4     1 version       1
//        5     1 type          1 PUT, 2 DELETE
//        6     1 flags         bit 0 continues (the batch goes on), other bits 0
//        7     1 reserved      0
//        8     4 key length    >= 1
//       12     4 value length  0 for DELETE
//       16     8 timestamp     milliseconds since the Unix epoch
//       24     4 checksum      CRC-32 of bytes 0..<24, then key, then value
//       28     k key           UTF-8
//     28+k     v value         bytes
//
// The magic's high first byte keeps a text file from ever parsing as a record.
// The checksum skips its own four bytes and covers everything else, so a
// record is verified without copying it.
//
// Every other file reads the layout from here; `logdec --format` prints the
// table below from these same constants.

// Constants are inlinable computed properties, not stored globals: every
// layer reads them per record, and a stored global in another module costs a
// lazy-initialisation check at each read.
public enum RecordLayout {
    @inlinable public static var magic: UInt32 { 0x894C_4F47 }
    @inlinable public static var version: UInt8 { 1 }

    @inlinable public static var magicOffset: Int { 0 }
    @inlinable public static var versionOffset: Int { 4 }
    @inlinable public static var typeOffset: Int { 5 }
    @inlinable public static var flagsOffset: Int { 6 }
    @inlinable public static var reservedOffset: Int { 7 }
    @inlinable public static var keyLengthOffset: Int { 8 }
    @inlinable public static var valueLengthOffset: Int { 12 }
    @inlinable public static var timestampOffset: Int { 16 }
    @inlinable public static var checksumOffset: Int { 24 }
    @inlinable public static var headerSize: Int { 28 }

    /// Flag bits of byte 6. Segments written before the flags byte existed
    /// hold 0 there, so they read as batches of one record each.
    @inlinable public static var continuesFlag: UInt8 { 0x01 }
    @inlinable public static var knownFlags: UInt8 { continuesFlag }

    /// Records longer than this are refused before anything is allocated for them.
    @inlinable public static var defaultMaxRecord: Int { 64 << 20 }
    /// The longest record the format can describe (u32 key and value lengths).
    @inlinable public static var maxRecordLength: Int { headerSize + 2 * Int(UInt32.max) }

    /// One row of the layout table: a fixed field, or the variable key and value.
    public struct Field: Sendable {
        public let offset: String
        public let width: String
        public let name: String
        public let rule: String
    }

    public static var fields: [Field] {
        func fixed(_ offset: Int, _ next: Int, _ name: String, _ rule: String) -> Field {
            Field(offset: String(offset), width: String(next - offset), name: name, rule: rule)
        }
        let magicBytes = withUnsafeBytes(of: magic.bigEndian) { $0.map { hex($0) }.joined(separator: " ") }
        return [
            fixed(magicOffset, versionOffset, "magic",
                  "bytes `\(magicBytes)` (0x89 then ASCII `LOG`; the high first byte keeps text from ever parsing as a record)"),
            fixed(versionOffset, typeOffset, "version", "`\(version)`"),
            fixed(typeOffset, flagsOffset, "type",
                  "`\(RecordType.put.rawValue)` PUT, `\(RecordType.delete.rawValue)` DELETE (tombstone); any other value is invalid"),
            fixed(flagsOffset, reservedOffset, "flags",
                  "bit 0 (`\(hexByte(continuesFlag))`) *continues*: the record's batch goes on in the next record; every other bit `0`"),
            fixed(reservedOffset, keyLengthOffset, "reserved", "`0`; a non-zero value is invalid in version \(version)"),
            fixed(keyLengthOffset, valueLengthOffset, "key length", "u32, >= 1"),
            fixed(valueLengthOffset, timestampOffset, "value length", "u32; `0` for DELETE"),
            fixed(timestampOffset, checksumOffset, "timestamp", "u64, milliseconds since the Unix epoch"),
            fixed(checksumOffset, headerSize, "checksum",
                  "CRC-32 (IEEE 802.3 polynomial, the one zlib's `crc32` computes) of bytes 0..<\(checksumOffset) followed by the key and value bytes"),
            Field(offset: "\(headerSize)", width: "k", name: "key", rule: "UTF-8"),
            Field(offset: "\(headerSize)+k", width: "v", name: "value", rule: "bytes (usually UTF-8)"),
        ]
    }

    /// The layout as a Markdown table, the shape the contract uses.
    public static func table() -> String {
        let header = Field(offset: "offset", width: "width", name: "field", rule: "rule")
        let rows = [header] + fields
        let offsetWidth = rows.map(\.offset.count).max()!
        let widthWidth = rows.map(\.width.count).max()!
        let nameWidth = rows.map(\.name.count).max()!
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: n - s.count) }
        func line(_ f: Field) -> String {
            "| \(pad(f.offset, offsetWidth)) | \(pad(f.width, widthWidth)) | \(pad(f.name, nameWidth)) | \(f.rule) |\n"
        }
        let rule = "|\(String(repeating: "-", count: offsetWidth + 1)):|\(String(repeating: "-", count: widthWidth + 1)):|"
            + "\(String(repeating: "-", count: nameWidth + 2))|------|\n"
        var text = "Record format, version \(version). Big-endian; record length = \(headerSize) + k + v.\n\n"
        text += line(header) + rule
        for field in fields { text += line(field) }
        return text
    }

    private static func hexByte(_ byte: UInt8) -> String { "0x" + hex(byte) }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}

public enum RecordType: UInt8, Sendable {
    case put = 1
    case delete = 2

    public var name: String { self == .put ? "put" : "delete" }
}
