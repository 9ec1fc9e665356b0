// Fuzz target `json-line`: arbitrary bytes as the JSON lines `logenc` reads
// (and `logidx` reads as scan output), parsed by RecordLineParser and
// compared with an independent model written below: an RFC 8259 parser
// (UTF-8 checked by the stdlib, surrogate pairs, 512 levels of nesting) and
// the record rules of docs/format.md ("Records as JSON lines").
//
// Invariants (names for FUZZ_SKIP, see Fuzz/README.md):
//   parse-model     every line is accepted (with the model's type, key, value
//                   and timestamp), skipped as blank, or refused, as the model
//                   says; likewise with requireValue off (logidx's reading)
//   encode          Record.encode gives the model's bytes (header, CRC-32),
//                   which the model's reader accepts
//   encode-lines    RecordEncoder.encodeLines (logenc) writes exactly the
//                   records of the lines before the first bad one (a refused
//                   line, or a record over --max-record), and names that line
//   json-output     RecordJSON.write (logdec, logscan) writes one line, one
//                   JSON object with the fields in the documented order and
//                   the record's values (value_b64 exactly when the value is
//                   not UTF-8)
//   roundtrip       that line parses back to the same record, which encodes
//                   to the same bytes; the --no-values shape with a segment
//                   reads back with its address fields
//   scan-line       IndexBuilder.add(scanLine:) (logidx reading scan output)
//                   accepts or refuses a parsed line as the model says; a
//                   crash there is a finding too
//   scan-line-end   ... and refuses, without crashing, an address whose
//                   offset + length does not fit in 64 bits (skipping it
//                   keeps such lines away from the builder)

// The library under test: Common, or the modules it is split into.
#if canImport(Common)
@testable import Common
#endif
#if canImport(LogFormat)
@testable import LogFormat
#endif
#if canImport(LogIO)
@testable import LogIO
#endif
#if canImport(LogJSON)
@testable import LogJSON
#endif
#if canImport(LogStore)
@testable import LogStore
#endif
#if canImport(Glibc)
import Glibc
#endif

// The model of JSON lives in Fuzz/shared/json-model.swift, the harness in
// Fuzz/shared/harness.swift:
// Shared: json-model
// Shared: harness

enum Base64Model {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var k = 0
        while k < bytes.count {
            let chunk = Array(bytes[k..<min(k + 3, bytes.count)])
            let b = chunk + [UInt8](repeating: 0, count: 3 - chunk.count)
            let group = UInt32(b[0]) << 16 | UInt32(b[1]) << 8 | UInt32(b[2])
            for n in 0..<4 {
                out.append(n <= chunk.count ? alphabet[Int(group >> (18 - 6 * UInt32(n)) & 63)] : UInt8(ascii: "="))
            }
            k += 3
        }
        return out
    }

    /// Strict, canonical decoding: the one encoding `encode` gives, or nil.
    static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var sextets: [UInt32] = []
        var padding = 0
        for (n, c) in text.enumerated() {
            if c == UInt8(ascii: "=") {
                guard n >= text.count - 2 else { return nil }
                padding += 1
            } else {
                guard padding == 0, let v = alphabet.firstIndex(of: c) else { return nil }
                sextets.append(UInt32(v))
            }
        }
        var out: [UInt8] = []
        var bits: UInt32 = 0
        var count = 0
        for s in sextets {
            bits = bits << 6 | s
            count += 6
            if count >= 8 {
                count -= 8
                out.append(UInt8(bits >> UInt32(count) & 0xFF))
            }
        }
        guard bits & ((1 << UInt32(count)) - 1) == 0 else { return nil }
        return encode(out) == text ? out : nil
    }
}

// MARK: - The model of a record line

struct LineRecord: Equatable, CustomStringConvertible {
    var type: UInt8
    var key: [UInt8]
    var value: [UInt8]
    var timestamp: UInt64?
    var description: String { "type \(type) key \(key) value \(value.count) bytes timestamp \(timestamp.map(String.init) ?? "none")" }
}

struct AddressModel: Equatable {
    var segment: [UInt8]?
    var offset: UInt64?
    var length: UInt64?
    var checksum: UInt32?
    var malformed: String?
}

extension AddressModel {
    init(_ a: ScanAddress) {
        self.init(segment: a.segment.map { Array($0) }, offset: a.offset, length: a.length, checksum: a.checksum, malformed: a.malformed)
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A non-negative JSON integer that fits in 64 bits, as the record fields take it.
func unsignedValue(_ v: JSON) -> UInt64? {
    guard case .number(let text) = v, text.allSatisfy({ JSONModel.isDigit($0) }) else { return nil }
    return UInt64(String(decoding: text, as: UTF8.self))
}

/// What a record line means (docs/format.md, "Records as JSON lines").
func recordModel(_ fields: [JSON.Field], requireValue: Bool) -> (LineRecord, AddressModel)? {
    var key: [UInt8]?
    var value: [UInt8]?
    var valueBase64: [UInt8]?
    var type: UInt8?
    var timestamp: UInt64?
    var seenTimestamp = false
    var address = AddressModel()
    func note(_ field: String, _ present: Bool) { if !present && address.malformed == nil { address.malformed = field } }
    for field in fields {
        switch field.name {
        case bytes("key"):
            guard key == nil, case .string(let s) = field.value else { return nil }
            key = s
        case bytes("value"):
            guard value == nil, case .string(let s) = field.value else { return nil }
            value = s
        case bytes("value_b64"):
            guard valueBase64 == nil, case .string(let s) = field.value else { return nil }
            valueBase64 = s
        case bytes("type"):
            guard type == nil, case .string(let s) = field.value else { return nil }
            switch s {
            case bytes("put"): type = 1
            case bytes("delete"): type = 2
            default: return nil
            }
        case bytes("timestamp"):
            guard !seenTimestamp, let t = unsignedValue(field.value) else { return nil }
            timestamp = t
            seenTimestamp = true
        case bytes("segment"):
            if case .string(let s) = field.value { address.segment = s }
            note("segment", (address.segment?.count ?? 0) > 0)
        case bytes("offset"):
            address.offset = unsignedValue(field.value)
            note("offset", address.offset != nil)
        case bytes("length"):
            address.length = unsignedValue(field.value)
            note("length", address.length != nil)
        case bytes("checksum"):
            if case .string(let s) = field.value {
                let hex = s.count == 10 && s.starts(with: bytes("0x")) && s[2...].allSatisfy {
                    JSONModel.isDigit($0) || (0x41...0x46).contains($0) || (0x61...0x66).contains($0)
                }
                address.checksum = hex ? UInt32(String(decoding: s[2...], as: UTF8.self), radix: 16) : nil
            }
            note("checksum", address.checksum != nil)
        default:
            break
        }
    }
    guard let key, !key.isEmpty else { return nil }
    let recordType = type ?? 1
    var payload: [UInt8] = []
    if recordType == 2 {
        guard value == nil && valueBase64 == nil else { return nil }
    } else {
        switch (value, valueBase64) {
        case (.some, .some): return nil
        case (nil, nil): guard !requireValue else { return nil }
        case (let text?, nil): payload = text
        case (nil, let encoded?):
            if requireValue {
                guard let decoded = Base64Model.decode(encoded) else { return nil }
                payload = decoded
            }
        }
    }
    return (LineRecord(type: recordType, key: key, value: payload, timestamp: timestamp), address)
}

enum LineOutcome: Equatable, CustomStringConvertible {
    case blank
    case refused
    case record(LineRecord)
    var description: String {
        switch self {
        case .blank: return "blank"
        case .refused: return "refused"
        case .record(let r): return r.description
        }
    }
}

func modelOutcome(_ line: [UInt8], requireValue: Bool) -> (LineOutcome, AddressModel?) {
    switch JSONModel.line(line) {
    case nil: return (.blank, nil)
    case .failure: return (.refused, nil)
    case .success(let fields):
        guard let (record, address) = recordModel(fields, requireValue: requireValue) else { return (.refused, nil) }
        return (.record(record), address)
    }
}

// MARK: - The model of a record's bytes

enum RecordModel {
    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc(_ parts: ArraySlice<UInt8>...) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for part in parts {
            for b in part { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return ~c
    }

    static func be(_ v: UInt64, _ width: Int) -> [UInt8] { (0..<width).map { UInt8(v >> UInt64(8 * (width - 1 - $0)) & 0xFF) } }

    static func encode(_ r: LineRecord, timestamp: UInt64) -> [UInt8] {
        var out: [UInt8] = [0x89, 0x4C, 0x4F, 0x47, 1, r.type, 0, 0]
        out += be(UInt64(r.key.count), 4) + be(UInt64(r.value.count), 4) + be(timestamp, 8)
        let c = crc(out[0..<24], r.key[...], r.value[...])
        return out + be(UInt64(c), 4) + r.key + r.value
    }

    /// The record a byte string holds, if it is exactly one valid record.
    static func decode(_ a: [UInt8]) -> (LineRecord, checksum: UInt32)? {
        guard a.count >= 28, Array(a[0..<4]) == [0x89, 0x4C, 0x4F, 0x47], a[4] == 1, a[5] == 1 || a[5] == 2,
              a[6] & 0xFE == 0, a[7] == 0 else { return nil }
        func u(_ at: Int, _ width: Int) -> UInt64 { a[at..<(at + width)].reduce(0) { $0 << 8 | UInt64($1) } }
        let k = Int(u(8, 4)), v = Int(u(12, 4))
        guard k >= 1, a[5] == 1 || v == 0, a.count == 28 + k + v else { return nil }
        let stored = UInt32(u(24, 4))
        guard crc(a[0..<24], a[28...]) == stored, String(validating: a[28..<(28 + k)], as: UTF8.self) != nil else { return nil }
        return (LineRecord(type: a[5], key: Array(a[28..<(28 + k)]), value: Array(a[(28 + k)...]), timestamp: u(16, 8)), stored)
    }
}


// MARK: - Checks

let fixedTimestamp: UInt64 = 1_700_000_000_000
nonisolated(unsafe) let parser = RecordLineParser()
nonisolated(unsafe) let scanParser = RecordLineParser(requireValue: false)

/// What RecordLineParser makes of `line`; `inspect` sees the parsed input
/// while the line it borrows from is still there.
func libraryOutcome(_ line: [UInt8], _ parser: RecordLineParser, inspect: (RecordInput) -> Void = { _ in }) -> LineOutcome {
    line.withUnsafeBytes { raw in
        // An empty array has no base address; a line read from input always has one.
        let text = raw.baseAddress == nil ? UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: 8), count: 0) : raw
        do {
            guard let input = try parser.parse(text) else { return .blank }
            inspect(input)
            return .record(LineRecord(type: input.type.rawValue, key: Array(input.key), value: Array(input.value), timestamp: input.timestamp))
        } catch {
            return .refused
        }
    }
}

func quoted(_ text: String) -> String { String(decoding: JSONText.quoted(text), as: UTF8.self) }

/// The line RecordJSON writes for the record in `bytes`.
func written(_ bytes: [UInt8], offset: UInt64, shape: RecordJSON.Shape) -> [UInt8] {
    let out = ByteBuffer(capacity: 64)
    bytes.withUnsafeBytes { raw in
        let view = try! RecordView.parse(raw, maxRecord: Int.max, verify: true)
        try! RecordJSON.write(view, offset: offset, shape: shape, to: out)
    }
    return Array(out.bytes)
}

func checkOutput(_ record: LineRecord, _ encoded: [UInt8], checksum: UInt32) {
    let offset = UInt64(encoded.count) * 977
    let line = written(encoded, offset: offset, shape: RecordJSON.Shape(segment: nil, includeValue: true))
    check("json-output", line.last == 0x0A && line.dropLast().firstIndex(of: 0x0A) == nil,
          "RecordJSON.write wrote \(line.count) bytes that are not one line: \(String(decoding: line, as: UTF8.self))")
    let text = Array(line.dropLast())
    let shown = String(decoding: text, as: UTF8.self)
    guard case .success(let fields)? = JSONModel.line(text) else {
        check("json-output", false, "RecordJSON.write wrote a line that is not a JSON object: \(shown)")
        return
    }
    let valueIsUTF8 = String(validating: record.value, as: UTF8.self) != nil
    let names = fields.map { String(decoding: $0.name, as: UTF8.self) }
    let expectedNames = ["offset", "length", "type", "key"] + (record.type == 2 ? [] : [valueIsUTF8 ? "value" : "value_b64"]) + ["timestamp", "checksum"]
    check("json-output", names == expectedNames, "fields \(names), expected \(expectedNames): \(shown)")
    let expectedValues: [JSON] = [
        .number(bytes(String(offset))), .number(bytes(String(encoded.count))), .string(bytes(record.type == 1 ? "put" : "delete")),
        .string(record.key),
    ] + (record.type == 2 ? [] : [.string(valueIsUTF8 ? record.value : Base64Model.encode(record.value))]) + [
        .number(bytes(String(record.timestamp ?? fixedTimestamp))), .string(bytes(Hex.word(checksum))),
    ]
    check("json-output", fields.map(\.value) == expectedValues, "values of \(shown) are not the record's (\(record))")
    check("json-output", Hex.word(checksum) == "0x" + String(repeating: "0", count: 8 - String(checksum, radix: 16).count) + String(checksum, radix: 16),
          "checksum \(Hex.word(checksum)) is not 0x and eight lowercase hex digits")

    // Back in: the same record, the same bytes.
    let again = libraryOutcome(text, parser)
    var expected = record
    expected.timestamp = record.timestamp ?? fixedTimestamp
    check("roundtrip", again == .record(expected), "\(shown) reads back as \(again), expected \(expected)")
    if case .record(let r) = again {
        check("roundtrip", RecordModel.encode(r, timestamp: r.timestamp!) == encoded, "\(shown) does not encode back to the same bytes")
    }

    // The --no-values shape with a segment, as logidx reads it.
    let segment = "seg \"ment\"/\u{1}é.dat"
    let scan = Array(written(encoded, offset: offset, shape: RecordJSON.Shape(segment: segment, includeValue: false)).dropLast())
    let scanShown = String(decoding: scan, as: UTF8.self)
    var address: AddressModel?
    let scanned = libraryOutcome(scan, scanParser) { address = AddressModel($0.address) }
    var noValue = expected
    noValue.value = []
    check("roundtrip", scanned == .record(noValue), "\(scanShown) reads back as \(scanned), expected \(noValue)")
    let expectedAddress = AddressModel(segment: bytes(segment), offset: offset, length: UInt64(encoded.count), checksum: checksum)
    check("roundtrip", address == nil || address == expectedAddress, "\(scanShown) reads back with address \(String(describing: address))")
}

func checkLine(_ line: [UInt8]) {
    let shown = String(decoding: line, as: UTF8.self)
    let got = libraryOutcome(line, parser)
    let (expected, _) = modelOutcome(line, requireValue: true)
    check("parse-model", got == expected, "line \(shown.debugDescription): parsed as \(got), model says \(expected)")

    // As logidx reads it: no value needed, the address fields matter.
    let (scanExpected, address) = modelOutcome(line, requireValue: false)
    let scanGot = libraryOutcome(line, scanParser) { input in
        guard let address, case .record(let r) = scanExpected else { return }
        let got = AddressModel(input.address)
        check("parse-model", got == address, "line \(shown.debugDescription): address \(got), model says \(address)")
        var accepted = address.malformed == nil && address.segment != nil && address.offset != nil && address.length != nil
            && address.checksum != nil && r.timestamp != nil
        if accepted, let length = address.length { accepted = length >= UInt64(28 + r.key.count) }
        // A record that would end past 2^64 is no address: refused, not a crash.
        let endOverflows = accepted && address.offset!.addingReportingOverflow(address.length!).overflow
        if endOverflows {
            accepted = false
            // Known to trap (Fuzz/findings/index-scan-line-overflow): with
            // FUZZ_SKIP=scan-line-end such lines are not handed to the builder.
            if skipped.contains("scan-line-end") { return }
        }
        var added = true
        do { try IndexBuilder().add(scanLine: input, line: 1) } catch { added = false }
        check(endOverflows ? "scan-line-end" : "scan-line", added == accepted,
              "line \(shown.debugDescription): IndexBuilder.add(scanLine:) \(added ? "accepted" : "refused") it")
    }
    check("parse-model", scanGot == scanExpected, "line \(shown.debugDescription) (requireValue off): parsed as \(scanGot), model says \(scanExpected)")

    guard case .record(let record) = got else { return }
    let timestamp = record.timestamp ?? fixedTimestamp
    let encoded = Record.encode(type: RecordType(rawValue: record.type)!, key: record.key, value: record.value, timestamp: timestamp)
    check("encode", encoded == RecordModel.encode(record, timestamp: timestamp), "Record.encode of \(record) is not the model's bytes")
    guard let (decoded, checksum) = RecordModel.decode(encoded) else {
        check("encode", false, "Record.encode of \(record) is not a valid record by the model")
        return
    }
    check("encode", decoded == LineRecord(type: record.type, key: record.key, value: record.value, timestamp: timestamp),
          "Record.encode of \(record) decodes as \(decoded)")
    checkOutput(record, encoded, checksum: checksum)
}

func checkEncodeLines(_ a: [UInt8], _ lines: [[UInt8]], maxRecord: Int) {
    var expected: [UInt8] = []
    var failure: Int?
    for (n, line) in lines.enumerated() {
        let (outcome, _) = modelOutcome(line, requireValue: true)
        if case .refused = outcome { failure = n + 1; break }
        guard case .record(let r) = outcome else { continue }
        if 28 + r.key.count + r.value.count > maxRecord { failure = n + 1; break }
        expected += RecordModel.encode(r, timestamp: r.timestamp ?? fixedTimestamp)
    }
    a.withUnsafeBytes { scratch.fill($0) }
    let batch = ByteBuffer(capacity: 64)
    var errorLine: Int?
    do {
        try RecordEncoder(maxRecord: maxRecord, fixedTimestamp: fixedTimestamp).encodeLines(from: scratch.descriptor, into: batch) {}
    } catch let error as InputLineError {
        errorLine = error.line
    } catch {
        check("encode-lines", false, "RecordEncoder.encodeLines threw \(error)")
    }
    check("encode-lines", errorLine == failure,
          "RecordEncoder(maxRecord \(maxRecord)) stopped at line \(errorLine.map(String.init) ?? "none"), model says \(failure.map(String.init) ?? "none")")
    check("encode-lines", Array(batch.bytes) == expected,
          "RecordEncoder(maxRecord \(maxRecord)) wrote \(batch.count) bytes, model says \(expected.count) (first difference at \(zip(batch.bytes, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(batch.count, expected.count)))")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let a = Array(UnsafeRawBufferPointer(start: data, count: size))
    // Lines as LineReader cuts them: a last line without a newline counts.
    var lines = a.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
    if lines.last?.isEmpty == true { lines.removeLast() }
    for line in lines.prefix(16) { checkLine(line) }
    // logenc's whole loop, with the default limit, and with a limit one byte
    // short of the longest record if there is one.
    checkEncodeLines(a, lines, maxRecord: RecordLayout.defaultMaxRecord)
    let longest = lines.compactMap { line -> Int? in
        guard case (.record(let r), _) = modelOutcome(line, requireValue: true) else { return nil }
        return 28 + r.key.count + r.value.count
    }.max()
    if let longest { checkEncodeLines(a, lines, maxRecord: longest - 1) }
    return 0
}
