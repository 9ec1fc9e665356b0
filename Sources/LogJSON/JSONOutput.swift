// Writes records as JSON lines (contract section 2):
//
//   {"segment":"s","offset":0,"length":35,"type":"put","key":"name","value":"ish","timestamp":1700000000000,"checksum":"0xcff8f08d"}
//
// Keys are always in this order; output is compact and ends with a newline.
// Strings are escaped per RFC 8259 (the two-character escapes where JSON has
// them, `\u00XX` for other control characters) and non-ASCII UTF-8 passes
// through unchanged. A value that is not UTF-8 is written as `value_b64`.
//
// Each line is formatted straight into the output buffer after reserving its
// worst case (every byte escaped to six), so there is no per-record allocation.

import LogFormat
import LogIO

public enum RecordJSON {
    /// Which optional parts of a record line to write.
    public struct Shape {
        /// The JSON string (quotes included) of the segment path, or nil.
        public var segment: [UInt8]?
        public var includeValue: Bool
        /// A leading `"status":"..."` field, for lookup results.
        public var status: StaticString?

        public init(segment: String?, includeValue: Bool, status: StaticString? = nil) {
            self.segment = segment.map { JSONText.quoted($0) }
            self.includeValue = includeValue
            self.status = status
        }
    }

    public static func write<Buffer: LineBuffer>(_ record: RecordView, offset: UInt64, shape: Shape, to out: Buffer) throws(SystemError) {
        let keyCount = record.key.count
        let valueCount = shape.includeValue ? record.value.count : 0
        let worstCase = 240 + (shape.segment?.count ?? 0) + 6 * keyCount + max(6 * valueCount, (valueCount + 2) / 3 * 4)
        let start = try out.room(for: worstCase)
        var p = start
        if let status = shape.status {
            p.put("{\"status\":\"")
            p.put(status)
            p.put("\",")
        } else {
            p.put("{")
        }
        if let segment = shape.segment {
            p.put("\"segment\":")
            segment.withUnsafeBytes { p.put($0) }
            p.put(",\"offset\":")
        } else {
            p.put("\"offset\":")
        }
        p.putDecimal(offset)
        p.put(",\"length\":")
        p.putDecimal(UInt64(record.length))
        p.put(record.type == .put ? ",\"type\":\"put\",\"key\":\"" : ",\"type\":\"delete\",\"key\":\"")
        JSONText.putStringBody(record.key, &p, lossy: true)
        if shape.includeValue && record.type == .put {
            let valueStart = p
            p.put("\",\"value\":\"")
            if !JSONText.putStringBody(record.value, &p, lossy: false) {
                p = valueStart
                p.put("\",\"value_b64\":\"")
                p += Base64.encode(record.value, into: p)
            }
        }
        p.put("\",\"timestamp\":")
        p.putDecimal(record.timestamp)
        p.put(",\"checksum\":\"0x")
        p.putHex(record.checksum)
        p.put(record.continues ? "\",\"continues\":true}\n" : "\"}\n")
        out.commit(from: start, to: p, reserved: worstCase)
    }
}

extension RecordJSON {
    /// A record that has no address (one read from elsewhere than a
    /// segment), in the shape `logenc` reads:
    /// `{"type":"put","key":"k","value":"v","timestamp":1}`.
    public static func write<Buffer: LineBuffer>(
        type: RecordType, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, timestamp: UInt64, to out: Buffer
    ) throws(SystemError) {
        let worstCase = 80 + 6 * key.count + max(6 * value.count, (value.count + 2) / 3 * 4)
        let start = try out.room(for: worstCase)
        var p = start
        p.put(type == .put ? "{\"type\":\"put\",\"key\":\"" : "{\"type\":\"delete\",\"key\":\"")
        JSONText.putStringBody(key, &p, lossy: true)
        if type == .put {
            let valueStart = p
            p.put("\",\"value\":\"")
            if !JSONText.putStringBody(value, &p, lossy: false) {
                p = valueStart
                p.put("\",\"value_b64\":\"")
                p += Base64.encode(value, into: p)
            }
        }
        p.put("\",\"timestamp\":")
        p.putDecimal(timestamp)
        p.put("}\n")
        out.commit(from: start, to: p, reserved: worstCase)
    }
}

/// Somewhere to format lines in place: reserve room, write, commit.
public protocol LineBuffer: AnyObject {
    func room(for n: Int) throws(SystemError) -> UnsafeMutableRawPointer
    func commit(_ n: Int)
}

extension LineBuffer {
    /// Commits the bytes written from `start` (returned by `room(for:
    /// reserved)`) up to `end`. Formatting into reserved room trusts a
    /// worst-case count; this checks it on every line, so a wrong count stops
    /// the tool instead of going on over corrupted memory.
    @inline(__always)
    public func commit(from start: UnsafeMutableRawPointer, to end: UnsafeMutableRawPointer, reserved: Int) {
        let written = end - start
        precondition(written >= 0 && written <= reserved, "formatted \(written) bytes into room for \(reserved)")
        commit(written)
    }
}

extension OutputBuffer: LineBuffer {
    @inline(__always)
    public func room(for n: Int) throws(SystemError) -> UnsafeMutableRawPointer {
        try reserve(n)
    }
}

extension ByteBuffer: LineBuffer {
    @inline(__always)
    public func room(for n: Int) -> UnsafeMutableRawPointer {
        reserve(n)
        return base + count
    }

    @inline(__always)
    public func commit(_ n: Int) {
        count &+= n
    }
}

public enum JSONText {
    /// A Swift string as a JSON string literal, quotes included.
    public static func quoted(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { utf8 in
            [UInt8](unsafeUninitializedCapacity: 6 * utf8.count + 2) { buffer, initialized in
                var p = UnsafeMutableRawPointer(buffer.baseAddress!)
                p.put("\"")
                putStringBody(UnsafeRawBufferPointer(utf8), &p, lossy: true)
                p.put("\"")
                initialized = p - UnsafeMutableRawPointer(buffer.baseAddress!)
            }
        }
    }

    /// Escapes `bytes` into `p` (which has room for six bytes per input byte)
    /// and advances it. Returns false, with `p` in an unspecified place inside
    /// the reserved room, if the bytes are not UTF-8, unless `lossy`, which
    /// writes U+FFFD for each invalid byte instead.
    @discardableResult
    @inline(__always)
    static func putStringBody(_ bytes: UnsafeRawBufferPointer, _ p: inout UnsafeMutableRawPointer, lossy: Bool) -> Bool {
        guard let src = bytes.baseAddress else { return true }
        let n = bytes.count
        var i = 0
        while i < n {
            if i &+ 8 <= n {
                let word = src.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                if !JSONScan.needsAttention(word) {
                    p.storeBytes(of: word, as: UInt64.self)
                    p += 8
                    i &+= 8
                    continue
                }
            }
            let b = src.load(fromByteOffset: i, as: UInt8.self)
            if b >= 0x80 {
                let length = UTF8Validation.sequenceLength(src, i, n, b)
                if length == 0 {
                    guard lossy else { return false }
                    p.put("\u{FFFD}")
                    i &+= 1
                    continue
                }
                p.copyMemory(from: src + i, byteCount: length)
                p += length
                i &+= length
            } else if b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                putEscape(b, &p)
                i &+= 1
            } else {
                p.storeBytes(of: b, as: UInt8.self)
                p += 1
                i &+= 1
            }
        }
        return true
    }

    @inline(never)
    static func putEscape(_ b: UInt8, _ p: inout UnsafeMutableRawPointer) {
        switch b {
        case UInt8(ascii: "\""): p.put("\\\"")
        case UInt8(ascii: "\\"): p.put("\\\\")
        case 0x08: p.put("\\b")
        case 0x0C: p.put("\\f")
        case 0x0A: p.put("\\n")
        case 0x0D: p.put("\\r")
        case 0x09: p.put("\\t")
        default:
            p.put("\\u00")
            p.storeBytes(of: hexDigit(b >> 4), as: UInt8.self)
            p.storeBytes(of: hexDigit(b & 15), toByteOffset: 1, as: UInt8.self)
            p += 2
        }
    }

    /// "00" to "99" back to back: a literal, so no lazily made table.
    @inline(__always)
    static var digitPairs: UnsafePointer<UInt8> {
        let pairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
        return pairs.utf8Start
    }

    /// Digits of `value` in decimal, by comparisons that take the same
    /// branches for the similar numbers of one output.
    @inline(__always)
    static func decimalCount(_ v: UInt64) -> Int {
        if v < 10_000_000_000 {
            if v < 100_000 { return v < 100 ? (v < 10 ? 1 : 2) : (v < 1000 ? 3 : v < 10_000 ? 4 : 5) }
            return v < 10_000_000 ? (v < 1_000_000 ? 6 : 7) : (v < 100_000_000 ? 8 : v < 1_000_000_000 ? 9 : 10)
        }
        if v < 1_000_000_000_000_000 {
            return v < 1_000_000_000_000 ? (v < 100_000_000_000 ? 11 : 12)
                : (v < 10_000_000_000_000 ? 13 : v < 100_000_000_000_000 ? 14 : 15)
        }
        return v < 100_000_000_000_000_000 ? (v < 10_000_000_000_000_000 ? 16 : 17)
            : (v < 1_000_000_000_000_000_000 ? 18 : v < 10_000_000_000_000_000_000 ? 19 : 20)
    }

    @inline(__always)
    static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? 0x30 &+ nibble : 0x57 &+ nibble
    }
}

/// Word-at-a-time tests shared by the JSON reader and writer.
enum JSONScan {
    static let ones: UInt64 = 0x0101_0101_0101_0101
    static let highs: UInt64 = 0x8080_8080_8080_8080

    /// True if any of the eight bytes is non-ASCII, a control character, a
    /// quote or a backslash: the bytes a JSON string cannot copy verbatim.
    @inline(__always)
    static func needsAttention(_ w: UInt64) -> Bool {
        let control = (w &- 0x20 &* ones) & ~w
        let quote = hasZeroByte(w ^ (0x22 &* ones))
        let backslash = hasZeroByte(w ^ (0x5C &* ones))
        return ((w | control) & highs) | quote | backslash != 0
    }

    @inline(__always)
    static func hasZeroByte(_ w: UInt64) -> UInt64 {
        (w &- ones) & ~w & highs
    }
}

extension UnsafeMutableRawPointer {
    @inline(__always)
    mutating func put(_ text: StaticString) {
        let count = text.utf8CodeUnitCount
        let source = UnsafeRawPointer(text.utf8Start)
        // The field names and punctuation between values are a few bytes
        // each, several per output line: two overlapping word copies, not a
        // call of memmove each.
        switch count {
        case 8...16:
            storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
            storeBytes(of: source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self), toByteOffset: count &- 8, as: UInt64.self)
        case 4..<8:
            storeBytes(of: source.loadUnaligned(as: UInt32.self), as: UInt32.self)
            storeBytes(of: source.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self), toByteOffset: count &- 4, as: UInt32.self)
        default:
            copyMemory(from: source, byteCount: count)
        }
        self += count
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        copyMemory(from: base, byteCount: bytes.count)
        self += bytes.count
    }

    @inline(__always)
    mutating func putDecimal(_ value: UInt64) {
        // Written from the last digit back, two digits a step: offsets,
        // lengths and timestamps are up to 13 digits on every line.
        let count = JSONText.decimalCount(value)
        let pairs = JSONText.digitPairs
        var v = value
        var end = self + count
        while v >= 100 {
            let pair = Int(v % 100) &* 2
            v /= 100
            end -= 2
            end.storeBytes(of: pairs[pair], as: UInt8.self)
            end.storeBytes(of: pairs[pair &+ 1], toByteOffset: 1, as: UInt8.self)
        }
        if v >= 10 {
            let pair = Int(v) &* 2
            end -= 2
            end.storeBytes(of: pairs[pair], as: UInt8.self)
            end.storeBytes(of: pairs[pair &+ 1], toByteOffset: 1, as: UInt8.self)
        } else {
            end -= 1
            end.storeBytes(of: UInt8(truncatingIfNeeded: 0x30 &+ v), as: UInt8.self)
        }
        self += count
    }

    @inline(__always)
    mutating func putHex(_ value: UInt32) {
        for shift in stride(from: 28, through: 0, by: -4) {
            storeBytes(of: JSONText.hexDigit(UInt8(truncatingIfNeeded: value >> UInt32(shift)) & 15), as: UInt8.self)
            self += 1
        }
    }
}
