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
        copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
        self += text.utf8CodeUnitCount
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        copyMemory(from: base, byteCount: bytes.count)
        self += bytes.count
    }

    @inline(__always)
    mutating func putDecimal(_ value: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        var v = value
        withUnsafeMutableBytes(of: &digits) { scratch in
            repeat {
                count &+= 1
                scratch[24 &- count] = UInt8(truncatingIfNeeded: 0x30 &+ v % 10)
                v /= 10
            } while v != 0
            copyMemory(from: scratch.baseAddress! + (24 &- count), byteCount: count)
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
