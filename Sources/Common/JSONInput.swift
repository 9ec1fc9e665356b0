// Reads one record from a JSON line (contract section 2): an object with
// `key` (required), `type` ("put" by default, or "delete"), `value` or
// `value_b64` for a put, and `timestamp` (an integer; absent means now).
// Every other field must be valid JSON and is ignored, so scan output, with
// its `segment`, `offset`, `length` and `checksum`, reads back unchanged.
//
// The parser is strict RFC 8259 on bytes: strings must be UTF-8, `\u`
// escapes must pair their surrogates, duplicate record fields are refused.
// A string without escapes is returned in place, borrowed from the line;
// one with escapes is decoded into a scratch buffer that the next line reuses.

public struct JSONLineError: Error, Equatable, Sendable {
    /// The 1-based byte column of a syntax error, nil for a semantic one.
    public let column: Int?
    public let reason: String

    public var message: String {
        if let column { return "invalid JSON at column \(column): \(reason)" }
        return reason
    }
}

/// A record read from a JSON line; the byte ranges are borrowed from the line
/// or from the parser's scratch buffers until the next `parse`.
public struct RecordInput {
    public var type: RecordType
    public var key: UnsafeRawBufferPointer
    public var value: UnsafeRawBufferPointer
    public var timestamp: UInt64?
}

public final class RecordLineParser {
    private let keyScratch = ByteBuffer()
    private let valueScratch = ByteBuffer()
    private let decodedScratch = ByteBuffer()
    private let otherScratch = ByteBuffer()
    private static let maxDepth = 512

    private var p = UnsafeRawPointer(bitPattern: 1)!
    private var i = 0
    private var end = 0

    public init() {}

    /// Parses one line; nil if it is blank.
    public func parse(_ line: UnsafeRawBufferPointer) throws(JSONLineError) -> RecordInput? {
        guard let base = line.baseAddress else { return nil }
        p = base
        i = 0
        end = line.count
        skipWhitespace()
        if i == end { return nil }

        var key: UnsafeRawBufferPointer?
        var value: UnsafeRawBufferPointer?
        var valueBase64: UnsafeRawBufferPointer?
        var type: RecordType?
        var timestamp: UInt64?
        var seenTimestamp = false

        try expect(UInt8(ascii: "{"), "expected '{' to start an object")
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                guard peek() == UInt8(ascii: "\"") else { throw syntax("expected '\"' to start a field name") }
                let name = try string(into: otherScratch)
                let field = Field(name)
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "expected ':' after a field name")
                skipWhitespace()
                if field != .other, duplicate(field, key: key, value: value, valueBase64: valueBase64, type: type, seenTimestamp: seenTimestamp) {
                    throw semantic("duplicate field \"\(field.name)\"")
                }
                switch field {
                case .key:
                    guard peek() == UInt8(ascii: "\"") else { throw semantic("\"key\" must be a string") }
                    key = try string(into: keyScratch)
                case .value:
                    guard peek() == UInt8(ascii: "\"") else { throw semantic("\"value\" must be a string") }
                    value = try string(into: valueScratch)
                case .valueBase64:
                    guard peek() == UInt8(ascii: "\"") else { throw semantic("\"value_b64\" must be a string") }
                    valueBase64 = try string(into: valueScratch)
                case .type:
                    guard peek() == UInt8(ascii: "\"") else { throw semantic("\"type\" must be \"put\" or \"delete\"") }
                    let text = try string(into: otherScratch)
                    if equals(text, "put") { type = .put } else if equals(text, "delete") { type = .delete } else {
                        throw semantic("\"type\" must be \"put\" or \"delete\"")
                    }
                case .timestamp:
                    timestamp = try timestampValue()
                    seenTimestamp = true
                case .other:
                    try skipValue(depth: 1)
                }
                skipWhitespace()
                if peek() == UInt8(ascii: ",") {
                    i += 1
                    skipWhitespace()
                    continue
                }
                try expect(UInt8(ascii: "}"), "expected ',' or '}' after a field")
                break
            }
        }
        skipWhitespace()
        guard i == end else { throw syntax("unexpected text after the object") }

        guard let key else { throw semantic("missing \"key\"") }
        guard key.count > 0 else { throw semantic("empty \"key\"") }
        let recordType = type ?? .put
        let payload: UnsafeRawBufferPointer
        switch (recordType, value, valueBase64) {
        case (.delete, nil, nil):
            payload = UnsafeRawBufferPointer(start: nil, count: 0)
        case (.delete, _, _):
            throw semantic("a delete has no value")
        case (.put, .some, .some):
            throw semantic("both \"value\" and \"value_b64\"")
        case (.put, nil, nil):
            throw semantic("a put needs \"value\" or \"value_b64\"")
        case (.put, let text?, nil):
            payload = text
        case (.put, nil, let encoded?):
            guard Base64.decode(encoded, into: decodedScratch) else { throw semantic("\"value_b64\" is not valid base64") }
            payload = decodedScratch.bytes
        }
        return RecordInput(type: recordType, key: key, value: payload, timestamp: timestamp)
    }

    // MARK: Fields

    private enum Field: Equatable {
        case key, value, valueBase64, type, timestamp, other

        init(_ name: UnsafeRawBufferPointer) {
            if equals(name, "key") { self = .key }
            else if equals(name, "value") { self = .value }
            else if equals(name, "value_b64") { self = .valueBase64 }
            else if equals(name, "type") { self = .type }
            else if equals(name, "timestamp") { self = .timestamp }
            else { self = .other }
        }

        var name: String {
            switch self {
            case .key: "key"
            case .value: "value"
            case .valueBase64: "value_b64"
            case .type: "type"
            case .timestamp: "timestamp"
            case .other: ""
            }
        }
    }

    private func duplicate(
        _ field: Field, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
        valueBase64: UnsafeRawBufferPointer?, type: RecordType?, seenTimestamp: Bool
    ) -> Bool {
        switch field {
        case .key: key != nil
        case .value: value != nil
        case .valueBase64: valueBase64 != nil
        case .type: type != nil
        case .timestamp: seenTimestamp
        case .other: false
        }
    }

    private func timestampValue() throws(JSONLineError) -> UInt64 {
        let mustBe = "\"timestamp\" must be a non-negative integer"
        guard let first = peek(), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { throw semantic(mustBe) }
        let start = i
        var result: UInt64 = 0
        var overflow = false
        while let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") {
            let (times10, o1) = result.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(d - UInt8(ascii: "0")))
            overflow = overflow || o1 || o2
            result = sum
            i += 1
        }
        if first == UInt8(ascii: "0") && i - start > 1 { throw syntax("leading zero in a number", at: start) }
        if let next = peek(), next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            throw semantic(mustBe)
        }
        guard !overflow else { throw semantic("\"timestamp\" is larger than \(UInt64.max)") }
        return result
    }

    // MARK: Strings

    /// Reads the string starting at the opening quote. Returns its bytes in
    /// place if it has no escapes, or decoded into `scratch` if it has.
    private func string(into scratch: ByteBuffer) throws(JSONLineError) -> UnsafeRawBufferPointer {
        i += 1
        let start = i
        while i < end {
            if i &+ 8 <= end && !JSONScan.needsAttention(p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) {
                i &+= 8
                continue
            }
            let b = byte(i)
            if b == UInt8(ascii: "\"") {
                i += 1
                return UnsafeRawBufferPointer(start: p + start, count: i - 1 - start)
            }
            if b == UInt8(ascii: "\\") {
                scratch.removeAll()
                scratch.append(p + start, i - start)
                return try escapedString(into: scratch, quote: start - 1)
            }
            try plainCharacter(b)
        }
        throw syntax("unterminated string", at: start - 1)
    }

    /// Continues a string that has escapes, decoding it into `scratch`.
    private func escapedString(into scratch: ByteBuffer, quote: Int) throws(JSONLineError) -> UnsafeRawBufferPointer {
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
    private func plainCharacter(_ b: UInt8) throws(JSONLineError) {
        if b < 0x20 { throw syntax("control character \(Hex.byte(b)) in a string (escape it)") }
        if b < 0x80 { i += 1; return }
        let length = UTF8Validation.sequenceLength(p, i, end, b)
        guard length > 0 else { throw syntax("invalid UTF-8 in a string") }
        i += length
    }

    private func escape(into scratch: ByteBuffer, quote: Int) throws(JSONLineError) {
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

    private func hex4(escapeAt start: Int) throws(JSONLineError) -> UInt32 {
        guard i + 4 <= end else { throw syntax("\\u needs four hex digits", at: start) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = byte(i)
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: throw syntax("\\u needs four hex digits", at: start)
            }
            v = v << 4 | UInt32(digit)
            i += 1
        }
        return v
    }

    private func appendUTF8(_ scalar: UInt32, to scratch: ByteBuffer) {
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

    private func skipValue(depth: Int) throws(JSONLineError) {
        guard depth <= Self.maxDepth else { throw syntax("nesting deeper than \(Self.maxDepth) levels") }
        guard let c = peek() else { throw syntax("expected a value") }
        switch c {
        case UInt8(ascii: "\""):
            _ = try string(into: otherScratch)
        case UInt8(ascii: "{"):
            i += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { i += 1; return }
            while true {
                guard peek() == UInt8(ascii: "\"") else { throw syntax("expected '\"' to start a field name") }
                _ = try string(into: otherScratch)
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "expected ':' after a field name")
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { i += 1; skipWhitespace(); continue }
                try expect(UInt8(ascii: "}"), "expected ',' or '}' after a field")
                return
            }
        case UInt8(ascii: "["):
            i += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") { i += 1; return }
            while true {
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { i += 1; skipWhitespace(); continue }
                try expect(UInt8(ascii: "]"), "expected ',' or ']' in an array")
                return
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
        default:
            throw syntax("unexpected character '\(Hex.printable(c))'")
        }
    }

    private func literal(_ word: StaticString) throws(JSONLineError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= end, memcmpEqual(p + i, word.utf8Start, n) else { throw syntax("invalid literal") }
        i += n
    }

    private func skipNumber() throws(JSONLineError) {
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

    @inline(__always) private func byte(_ k: Int) -> UInt8 { p.load(fromByteOffset: k, as: UInt8.self) }
    @inline(__always) private func peek() -> UInt8? { i < end ? byte(i) : nil }
    @inline(__always) private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    @inline(__always)
    private func skipWhitespace() {
        while i < end {
            let c = byte(i)
            guard c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A else { return }
            i += 1
        }
    }

    @inline(__always)
    private func expect(_ c: UInt8, _ reason: String) throws(JSONLineError) {
        guard peek() == c else { throw syntax(reason) }
        i += 1
    }

    private func syntax(_ reason: String, at position: Int? = nil) -> JSONLineError {
        JSONLineError(column: (position ?? i) + 1, reason: reason)
    }

    private func semantic(_ reason: String) -> JSONLineError {
        JSONLineError(column: nil, reason: reason)
    }
}

@inline(__always)
private func equals(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
    bytes.count == word.utf8CodeUnitCount && memcmpEqual(bytes.baseAddress!, word.utf8Start, bytes.count)
}

@inline(__always)
private func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    for k in 0..<n where a.load(fromByteOffset: k, as: UInt8.self) != b.load(fromByteOffset: k, as: UInt8.self) {
        return false
    }
    return true
}

extension Hex {
    /// `0x` and two digits.
    public static func byte(_ value: UInt8) -> String { "0x" + digits(UInt64(value), count: 2) }

    /// A byte as itself if it is printable ASCII, else as `0xNN`.
    public static func printable(_ value: UInt8) -> String {
        (0x21...0x7E).contains(value) ? String(UnicodeScalar(value)) : byte(value)
    }
}
