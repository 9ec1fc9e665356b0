// The byte-level half of the JSON reader: a cursor over one line or document
// that reads strings (validating UTF-8, decoding escapes only when there are
// any), steps over values it does not need while still checking them, and
// reports syntax errors by 1-based byte column. RecordLineParser reads record
// lines with it; JSONDocument reads small whole documents.

import LogFormat
import LogIO

public class JSONCursor {
    final var p = UnsafeRawPointer(bitPattern: 1)!
    final var i = 0
    final var end = 0
    final let otherScratch = ByteBuffer()
    static let maxDepth = 512

    init() {}

    /// Points the cursor at `text`; false if it is empty.
    final func start(_ text: UnsafeRawBufferPointer) -> Bool {
        guard let base = text.baseAddress else { return false }
        p = base
        i = 0
        end = text.count
        return true
    }

    // MARK: Strings

    /// Reads the string starting at the opening quote. Returns its bytes in
    /// place if it has no escapes, or decoded into `scratch` if it has.
    final func string(into scratch: ByteBuffer) throws(JSONLineError) -> UnsafeRawBufferPointer {
        let start = i + 1
        // The common case, a run of plain ASCII, is scanned eight bytes at a
        // time in locals; anything else goes through the checked paths below.
        let base = p
        let limit = end
        var k = start
        while true {
            while k &+ 8 <= limit && !JSONScan.needsAttention(base.loadUnaligned(fromByteOffset: k, as: UInt64.self)) {
                k &+= 8
            }
            guard k < limit else { break }
            let b = base.load(fromByteOffset: k, as: UInt8.self)
            if b == UInt8(ascii: "\"") {
                i = k + 1
                return UnsafeRawBufferPointer(start: base + start, count: k - start)
            }
            i = k
            if b == UInt8(ascii: "\\") {
                scratch.removeAll()
                scratch.append(base + start, k - start)
                return try escapedString(into: scratch, quote: start - 1)
            }
            try plainCharacter(b)
            k = i
        }
        throw syntax("unterminated string", at: start - 1)
    }

    /// Continues a string that has escapes, decoding it into `scratch`.
    final func escapedString(into scratch: ByteBuffer, quote: Int) throws(JSONLineError) -> UnsafeRawBufferPointer {
        while i < end {
            let b = byte(i)
            if b == UInt8(ascii: "\"") {
                i += 1
                return scratch.bytes
            }
            if b == UInt8(ascii: "\\") {
                try escape(into: scratch, quote: quote)
                continue
            }
            let runStart = i
            try plainCharacter(b)
            scratch.append(p + runStart, i - runStart)
        }
        throw syntax("unterminated string", at: quote)
    }

    /// Steps over one unescaped character of a string, checking it.
    @inline(__always)
    final func plainCharacter(_ b: UInt8) throws(JSONLineError) {
        if b < 0x20 { throw syntax("control character \(Hex.byte(b)) in a string (escape it)") }
        if b < 0x80 { i += 1; return }
        let length = UTF8Validation.sequenceLength(p, i, end, b)
        guard length > 0 else { throw syntax("invalid UTF-8 in a string") }
        i += length
    }

    final func escape(into scratch: ByteBuffer, quote: Int) throws(JSONLineError) {
        let start = i
        i += 1
        guard let c = peek() else { throw syntax("unterminated string", at: quote) }
        i += 1
        switch c {
        case UInt8(ascii: "\""): scratch.append(0x22)
        case UInt8(ascii: "\\"): scratch.append(0x5C)
        case UInt8(ascii: "/"): scratch.append(0x2F)
        case UInt8(ascii: "b"): scratch.append(0x08)
        case UInt8(ascii: "f"): scratch.append(0x0C)
        case UInt8(ascii: "n"): scratch.append(0x0A)
        case UInt8(ascii: "r"): scratch.append(0x0D)
        case UInt8(ascii: "t"): scratch.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4(escapeAt: start)
            if (0xD800...0xDBFF).contains(scalar) {
                guard i + 1 < end, byte(i) == UInt8(ascii: "\\"), byte(i + 1) == UInt8(ascii: "u") else {
                    throw syntax("unpaired surrogate in a \\u escape", at: start)
                }
                i += 2
                let low = try hex4(escapeAt: start)
                guard (0xDC00...0xDFFF).contains(low) else { throw syntax("unpaired surrogate in a \\u escape", at: start) }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw syntax("unpaired surrogate in a \\u escape", at: start)
            }
            appendUTF8(scalar, to: scratch)
        default:
            throw syntax("invalid escape '\\\(Hex.printable(c))'", at: start)
        }
    }

    final func hex4(escapeAt start: Int) throws(JSONLineError) -> UInt32 {
        guard i + 4 <= end else { throw syntax("\\u needs four hex digits", at: start) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Hex.digitValue(byte(i)) else { throw syntax("\\u needs four hex digits", at: start) }
            v = v << 4 | UInt32(digit)
            i += 1
        }
        return v
    }

    final func appendUTF8(_ scalar: UInt32, to scratch: ByteBuffer) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | scalar >> 6))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | scalar >> 12))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | scalar >> 18))
            scratch.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    // MARK: Other values, skipped but checked

    final func skipValue(depth: Int) throws(JSONLineError) {
        guard depth <= Self.maxDepth else { throw syntax("nesting deeper than \(Self.maxDepth) levels") }
        guard let c = peek() else { throw syntax("expected a value") }
        switch c {
        case UInt8(ascii: "\""):
            _ = try string(into: otherScratch)
        case UInt8(ascii: "{"):
            try forEachField { _ throws(JSONLineError) in try skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            try forEachElement { () throws(JSONLineError) in try skipValue(depth: depth + 1) }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
        default:
            throw syntax("unexpected character '\(Hex.printable(c))'")
        }
    }

    /// Calls `body` for each field of the object at the cursor (at its `{`)
    /// with the field's name, the cursor at its value, which `body` must read
    /// whole. The name is borrowed from a scratch buffer that skipping a
    /// value reuses.
    final func forEachField(_ body: (UnsafeRawBufferPointer) throws(JSONLineError) -> Void) throws(JSONLineError) {
        i += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw syntax("expected '\"' to start a field name") }
            let name = try string(into: otherScratch)
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "expected ':' after a field name")
            skipWhitespace()
            try body(name)
            skipWhitespace()
            if peek() == UInt8(ascii: ",") { i += 1; skipWhitespace(); continue }
            try expect(UInt8(ascii: "}"), "expected ',' or '}' after a field")
            return
        }
    }

    /// Calls `body` with the cursor at each element of the array at the
    /// cursor (at its `[`); `body` must read the element whole.
    final func forEachElement(_ body: () throws(JSONLineError) -> Void) throws(JSONLineError) {
        i += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "]") { i += 1; return }
        while true {
            try body()
            skipWhitespace()
            if peek() == UInt8(ascii: ",") { i += 1; skipWhitespace(); continue }
            try expect(UInt8(ascii: "]"), "expected ',' or ']' in an array")
            return
        }
    }

    /// A non-negative integer if that is what comes next; anything else valid
    /// is skipped and gives nil.
    final func optionalUnsigned(depth: Int) throws(JSONLineError) -> UInt64? {
        let start = i
        if case .value(let value) = try integer() { return value }
        i = start
        try skipValue(depth: depth)
        return nil
    }

    final func literal(_ word: StaticString) throws(JSONLineError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= end, memcmpEqual(p + i, word.utf8Start, n) else { throw syntax("invalid literal") }
        i += n
    }

    final func skipNumber() throws(JSONLineError) {
        let start = i
        if peek() == UInt8(ascii: "-") { i += 1 }
        guard let first = peek(), isDigit(first) else { throw syntax("invalid number", at: start) }
        i += 1
        if first != UInt8(ascii: "0") {
            while let d = peek(), isDigit(d) { i += 1 }
        } else if let d = peek(), isDigit(d) {
            throw syntax("leading zero in a number", at: i - 1)
        }
        if peek() == UInt8(ascii: ".") {
            i += 1
            guard let d = peek(), isDigit(d) else { throw syntax("invalid number", at: start) }
            while let d = peek(), isDigit(d) { i += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            i += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { i += 1 }
            guard let d = peek(), isDigit(d) else { throw syntax("invalid number", at: start) }
            while let d = peek(), isDigit(d) { i += 1 }
        }
    }

    // MARK: Cursor

    @inline(__always) final func byte(_ k: Int) -> UInt8 { p.load(fromByteOffset: k, as: UInt8.self) }
    @inline(__always) final func peek() -> UInt8? { i < end ? byte(i) : nil }
    @inline(__always) final func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    @inline(__always)
    final func skipWhitespace() {
        while i < end {
            let c = byte(i)
            guard c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A else { return }
            i += 1
        }
    }

    @inline(__always)
    final func expect(_ c: UInt8, _ reason: String) throws(JSONLineError) {
        guard peek() == c else { throw syntax(reason) }
        i += 1
    }

    enum Integer {
        case value(UInt64)
        case notAnInteger
        case tooLarge
    }

    /// Reads a non-negative integer that fits in 64 bits. Anything else that
    /// is a number or another value is reported as such, with the cursor
    /// somewhere inside it.
    final func integer() throws(JSONLineError) -> Integer {
        guard let first = peek(), isDigit(first) else { return .notAnInteger }
        let start = i
        var result: UInt64 = 0
        var overflow = false
        while let d = peek(), isDigit(d) {
            let (times10, o1) = result.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(d - UInt8(ascii: "0")))
            overflow = overflow || o1 || o2
            result = sum
            i += 1
        }
        if first == UInt8(ascii: "0") && i - start > 1 { throw syntax("leading zero in a number", at: start) }
        if let next = peek(), next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            return .notAnInteger
        }
        return overflow ? .tooLarge : .value(result)
    }

    /// A non-negative 64-bit integer, or a syntax error.
    final func unsigned() throws(JSONLineError) -> UInt64 {
        let start = i
        guard case .value(let value) = try integer() else { throw syntax("expected a non-negative integer", at: start) }
        return value
    }

    final func syntax(_ reason: String, at position: Int? = nil) -> JSONLineError {
        JSONLineError(column: (position ?? i) + 1, reason: reason)
    }
}
