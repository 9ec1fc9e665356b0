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

import LogFormat
import LogIO

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
    /// Empty for a delete, and for a put read without `requireValue`.
    public var value: UnsafeRawBufferPointer
    public var timestamp: UInt64?
    /// The record's batch goes on in the next record.
    public var continues = false
    /// A `{"type":"commit"}` line: the end of a batch, not a record.
    public var isCommit = false
    /// The address fields of scan output, when present with the right type;
    /// `logenc` ignores them, `logidx` needs them.
    public var address: ScanAddress
}

public struct ScanAddress {
    public var segment: UnsafeRawBufferPointer?
    public var offset: UInt64?
    public var length: UInt64?
    public var checksum: UInt32?
    /// The first of these fields that was present with a value of the wrong
    /// kind, for a reader that needs them to say so.
    public var malformed: String?

    mutating func note(_ field: String, present: Bool) {
        if !present && malformed == nil { malformed = field }
    }
}

public final class RecordLineParser: JSONCursor {
    private let keyScratch = ByteBuffer()
    private let valueScratch = ByteBuffer()
    private let decodedScratch = ByteBuffer()
    private let segmentScratch = ByteBuffer()

    /// Whether a put must carry `value` or `value_b64`. Index building reads
    /// `logscan --no-values` output, where it does not.
    private let requireValue: Bool

    public init(requireValue: Bool = true) {
        self.requireValue = requireValue
    }

    /// The longest line worth reading: a record at the limit with every value
    /// byte escaped to six characters, plus room for the other fields.
    public static func maxLine(maxRecord: Int) -> Int { 6 * maxRecord + 65536 }

    /// Reads `source` line by line and calls `body` with each record and its
    /// 1-based line number; blank lines are skipped. Stops at the first
    /// malformed or over-long line with an InputLineError. `afterChunk` runs
    /// after the lines of each read, and `progress` is told the bytes read, as
    /// in LineReader.
    public func forEachRecord(
        in source: FileDescriptor, maxRecord: Int,
        _ body: (RecordInput, Int) throws -> Void, afterChunk: () throws -> Void = {},
        progress: ((UInt64) -> Void)? = nil
    ) throws {
        let reader = LineReader(source: source, maxLine: RecordLineParser.maxLine(maxRecord: maxRecord))
        do {
            try reader.forEachLine({ line, number in
                let parsed: RecordInput?
                do throws(JSONLineError) {
                    parsed = try parse(line)
                } catch {
                    throw InputLineError(line: number, reason: error.message)
                }
                if let parsed { try body(parsed, number) }
            }, afterChunk: afterChunk, progress: progress)
        } catch let error as LineTooLong {
            throw InputLineError(line: error.line, reason: "line longer than \(error.limit) bytes")
        }
    }

    /// Parses one line; nil if it is blank.
    public func parse(_ line: UnsafeRawBufferPointer) throws(JSONLineError) -> RecordInput? {
        guard start(line) else { return nil }
        skipWhitespace()
        if i == end { return nil }

        var key: UnsafeRawBufferPointer?
        var value: UnsafeRawBufferPointer?
        var valueBase64: UnsafeRawBufferPointer?
        var type: RecordType?
        var timestamp: UInt64?
        var seenTimestamp = false
        var continues: Bool?
        var isCommit = false
        var address = ScanAddress()

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
                if field.isRecordField, duplicate(field, key: key, value: value, valueBase64: valueBase64, type: type, seenTimestamp: seenTimestamp, continues: continues, isCommit: isCommit) {
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
                    guard peek() == UInt8(ascii: "\"") else { throw semantic("\"type\" must be \"put\", \"delete\" or \"commit\"") }
                    let text = try string(into: otherScratch)
                    if equals(text, "put") { type = .put } else if equals(text, "delete") { type = .delete } else if equals(text, "commit") {
                        isCommit = true
                    } else {
                        throw semantic("\"type\" must be \"put\", \"delete\" or \"commit\"")
                    }
                case .continues:
                    continues = try boolean("\"continues\" must be true or false")
                case .timestamp:
                    timestamp = try timestampValue()
                    seenTimestamp = true
                case .segment:
                    if peek() == UInt8(ascii: "\"") { address.segment = try string(into: segmentScratch) } else { try skipValue(depth: 1) }
                    address.note("segment", present: (address.segment?.count ?? 0) > 0)
                case .offset:
                    address.offset = try optionalUnsigned(depth: 1)
                    address.note("offset", present: address.offset != nil)
                case .length:
                    address.length = try optionalUnsigned(depth: 1)
                    address.note("length", present: address.length != nil)
                case .checksum:
                    if peek() == UInt8(ascii: "\"") { address.checksum = Hex.parseWord(try string(into: otherScratch)) } else { try skipValue(depth: 1) }
                    address.note("checksum", present: address.checksum != nil)
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
        if isCommit {
            guard key == nil, value == nil, valueBase64 == nil, continues == nil else {
                throw semantic("a commit line has only \"type\"")
            }
            var commit = RecordInput(type: .put, key: UnsafeRawBufferPointer(start: nil, count: 0),
                                     value: UnsafeRawBufferPointer(start: nil, count: 0), timestamp: nil, address: address)
            commit.isCommit = true
            return commit
        }

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
            guard !requireValue else { throw semantic("a put needs \"value\" or \"value_b64\"") }
            payload = UnsafeRawBufferPointer(start: nil, count: 0)
        case (.put, let text?, nil):
            payload = text
        case (.put, nil, let encoded?):
            guard requireValue else { payload = UnsafeRawBufferPointer(start: nil, count: 0); break }
            guard Base64.decode(encoded, into: decodedScratch) else { throw semantic("\"value_b64\" is not valid base64") }
            payload = decodedScratch.bytes
        }
        var record = RecordInput(type: recordType, key: key, value: payload, timestamp: timestamp, address: address)
        record.continues = continues ?? false
        return record
    }

    // MARK: Fields

    private enum Field: Equatable {
        case key, value, valueBase64, type, timestamp, continues
        case segment, offset, length, checksum
        case other

        init(_ name: UnsafeRawBufferPointer) {
            if equals(name, "key") { self = .key }
            else if equals(name, "value") { self = .value }
            else if equals(name, "value_b64") { self = .valueBase64 }
            else if equals(name, "type") { self = .type }
            else if equals(name, "timestamp") { self = .timestamp }
            else if equals(name, "continues") { self = .continues }
            else if equals(name, "segment") { self = .segment }
            else if equals(name, "offset") { self = .offset }
            else if equals(name, "length") { self = .length }
            else if equals(name, "checksum") { self = .checksum }
            else { self = .other }
        }

        /// The fields that make the record; the others are only read if they
        /// are well formed.
        var isRecordField: Bool {
            switch self {
            case .key, .value, .valueBase64, .type, .timestamp, .continues: true
            default: false
            }
        }

        var name: String {
            switch self {
            case .key: "key"
            case .value: "value"
            case .valueBase64: "value_b64"
            case .type: "type"
            case .timestamp: "timestamp"
            case .continues: "continues"
            default: ""
            }
        }
    }

    private func duplicate(
        _ field: Field, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
        valueBase64: UnsafeRawBufferPointer?, type: RecordType?, seenTimestamp: Bool, continues: Bool?, isCommit: Bool
    ) -> Bool {
        switch field {
        case .key: key != nil
        case .value: value != nil
        case .valueBase64: valueBase64 != nil
        case .type: type != nil || isCommit
        case .timestamp: seenTimestamp
        case .continues: continues != nil
        default: false
        }
    }

    private func boolean(_ reason: String) throws(JSONLineError) -> Bool {
        switch peek() {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: throw semantic(reason)
        }
    }

    private func timestampValue() throws(JSONLineError) -> UInt64 {
        switch try integer() {
        case .value(let value): return value
        case .notAnInteger: throw semantic("\"timestamp\" must be a non-negative integer")
        case .tooLarge: throw semantic("\"timestamp\" is larger than \(UInt64.max)")
        }
    }

    private func semantic(_ reason: String) -> JSONLineError {
        JSONLineError(column: nil, reason: reason)
    }
}

@inline(__always)
func equals(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
    bytes.count == word.utf8CodeUnitCount && memcmpEqual(bytes.baseAddress!, word.utf8Start, bytes.count)
}

@inline(__always)
func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    for k in 0..<n where a.load(fromByteOffset: k, as: UInt8.self) != b.load(fromByteOffset: k, as: UInt8.self) {
        return false
    }
    return true
}
