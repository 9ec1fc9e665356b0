// Shared helpers for the unit tests: hex and byte helpers, reference
// implementations written independently of Sources/Common (bitwise CRC-32,
// a record encoder, base64, a JSON string escaper), a deterministic PRNG,
// temporary files, and pipes fed by a writer thread.

@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: Bytes and hex

/// Bytes from hex digits; spaces are ignored.
func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8.filter { $0 != UInt8(ascii: " ") })
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    func nibble(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: preconditionFailure("not a hex digit: \(c)")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
}

private let lowerHexDigits = Array("0123456789abcdef".utf8)

/// Lowercase hex of `bytes`, no separators.
func hexString(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    for b in bytes {
        out.append(lowerHexDigits[Int(b >> 4)])
        out.append(lowerHexDigits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// `0x` and eight lowercase hex digits, written here rather than borrowed.
func hex8(_ value: UInt32) -> String {
    "0x" + hexString([UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)])
}

func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

// MARK: Reference implementations

enum Reference {
    /// CRC-32 (IEEE, reflected, init and final xor 0xFFFFFFFF), one bit at a time.
    static func crc32<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
            }
        }
        return ~crc
    }

    /// A header with any field values, valid or not; the checksum as given.
    static func header(
        magic: UInt32 = 0x894C_4F47, version: UInt8 = 1, type: UInt8 = 1, flags: UInt8 = 0, reserved: UInt8 = 0,
        keyLength: UInt32, valueLength: UInt32, timestamp: UInt64 = 0, checksum: UInt32 = 0
    ) -> [UInt8] {
        bigEndian(magic) + [version, type, flags, reserved] + bigEndian(keyLength)
            + bigEndian(valueLength) + bigEndian(timestamp) + bigEndian(checksum)
    }

    /// The checksum the contract defines: bytes 0..<24, then key and value.
    static func checksum(ofRecord record: [UInt8]) -> UInt32 {
        crc32(record[0..<24] + record[28...])
    }

    /// A record with a correct checksum; any type byte, any key and value.
    static func record(type: UInt8, key: [UInt8], value: [UInt8], timestamp: UInt64) -> [UInt8] {
        var r = header(type: type, keyLength: UInt32(key.count), valueLength: UInt32(value.count), timestamp: timestamp)
            + key + value
        let crc = checksum(ofRecord: r)
        r.replaceSubrange(24..<28, with: bigEndian(crc))
        return r
    }

    static func put(_ key: String, _ value: String, _ timestamp: UInt64) -> [UInt8] {
        record(type: 1, key: utf8(key), value: utf8(value), timestamp: timestamp)
    }

    static func delete(_ key: String, _ timestamp: UInt64) -> [UInt8] {
        record(type: 2, key: utf8(key), value: [], timestamp: timestamp)
    }

    /// Standard base64 (RFC 4648 section 4) with padding.
    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let chunk = Array(bytes[i..<min(i + 3, bytes.count)])
            var bits: UInt32 = 0
            for k in 0..<3 { bits = bits << 8 | UInt32(k < chunk.count ? chunk[k] : 0) }
            let sextets = [bits >> 18 & 63, bits >> 12 & 63, bits >> 6 & 63, bits & 63].map { alphabet[Int($0)] }
            out += sextets[0..<(chunk.count + 1)]
            out += Array(repeating: UInt8(ascii: "="), count: 3 - chunk.count)
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The body of a JSON string (no quotes) as the contract asks: the
    /// two-character escapes, `\u00xx` (lowercase) for other controls,
    /// everything else (DEL, '/', non-ASCII) as it is.
    static func jsonEscaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{00}"..."\u{1F}":
                out += "\\u00" + hexString([UInt8(scalar.value)])
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// True if `bytes` is well-formed UTF-8, judged by the standard library.
    static func isUTF8(_ bytes: [UInt8]) -> Bool {
        Array(String(decoding: bytes, as: UTF8.self).utf8) == bytes
    }
}

// MARK: Contract test vectors

enum Vectors {
    static let putHex = "894c4f470101000000000004000000030000018bcfe56800cff8f08d6e616d65697368"
    static let deleteHex = "894c4f470102000000000004000000000000018bcfe568012b7e11b56e616d65"
    static let put = bytes(hex: putHex)
    static let delete = bytes(hex: deleteHex)
    static let putChecksum: UInt32 = 0xcff8_f08d
    static let deleteChecksum: UInt32 = 0x2b7e_11b5
    static let putTimestamp: UInt64 = 1_700_000_000_000
    static let deleteTimestamp: UInt64 = 1_700_000_000_001
}

// MARK: Deterministic pseudo-random numbers

/// SplitMix64: small, fast, and the same sequence on every run.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    /// A random string mixing ASCII (quotes, backslashes and controls
    /// included), two-, three- and four-byte characters.
    mutating func string(maxScalars: Int, minScalars: Int = 0) -> String {
        let count = int(minScalars...maxScalars)
        var s = String.UnicodeScalarView()
        for _ in 0..<count {
            let scalar: Unicode.Scalar
            switch int(0...9) {
            case 0: scalar = Unicode.Scalar(UInt8(int(0...0x1F)))
            case 1: scalar = ["\"", "\\", "/", "\u{7F}"][int(0...3)]
            case 2: scalar = Unicode.Scalar(UInt32(int(0x80...0x7FF)))!
            case 3:
                var v = UInt32(int(0x800...0xFFFD))
                if (0xD800...0xDFFF).contains(v) { v -= 0x800 }
                scalar = Unicode.Scalar(v)!
            case 4: scalar = Unicode.Scalar(UInt32(int(0x10000...0x10FFFF)))!
            default: scalar = Unicode.Scalar(UInt8(int(0x20...0x7E)))
            }
            s.append(scalar)
        }
        return String(s)
    }
}

// MARK: Decoded records as plain values

/// A record copied out of a RecordView, so it outlives the buffer.
struct Decoded: Equatable, CustomStringConvertible {
    var type: RecordType
    var key: [UInt8]
    var value: [UInt8]
    var timestamp: UInt64
    var checksum: UInt32
    var length: Int
    var bytes: [UInt8]

    init(_ view: RecordView) {
        type = view.type
        key = Array(view.key)
        value = Array(view.value)
        timestamp = view.timestamp
        checksum = view.checksum
        length = view.length
        bytes = Array(view.bytes)
    }

    var description: String { "\(type.name) key=\(hexString(key)) value=\(hexString(value)) ts=\(timestamp)" }
}

func parseRecord(_ bytes: [UInt8], maxRecord: Int = RecordLayout.defaultMaxRecord, verify: Bool = true) -> Result<Decoded, RecordError> {
    bytes.withUnsafeBytes { raw in
        Result { () throws(RecordError) -> Decoded in
            Decoded(try RecordView.parse(raw, maxRecord: maxRecord, verify: verify))
        }
    }
}

func parseHeader(_ bytes: [UInt8], maxRecord: Int = RecordLayout.defaultMaxRecord) -> Result<RecordHeader, RecordError> {
    bytes.withUnsafeBytes { raw in
        Result { () throws(RecordError) -> RecordHeader in try RecordHeader.parse(raw, maxRecord: maxRecord) }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }

    var success: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}

// MARK: Files and pipes

struct TestIOError: Error, CustomStringConvertible {
    let description: String
}

/// A temporary file, removed when the object goes away.
final class TempFile {
    let path: String

    init(_ contents: [UInt8] = []) throws {
        var template = Array("/tmp/logkit-unit-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw TestIOError(description: "mkstemp failed: errno \(errno)") }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { close(fd) }
        try FileDescriptor(raw: fd, path: path).writeAll(contents)
    }

    deinit { unlink(path) }

    func open(_ flags: Int32) throws -> FileDescriptor {
        try FileDescriptor.open(path, flags)
    }

    func contents() throws -> [UInt8] {
        let fd = try open(O_RDONLY)
        defer { fd.close() }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            if n == 0 { return out }
            out += chunk[0..<n]
        }
    }
}

/// Writes `data` into a pipe's write end, `piece` bytes at a time, pausing
/// between pieces, then closes it. Runs on its own POSIX thread.
private final class PipeWriter: @unchecked Sendable {
    let fd: Int32
    let data: [UInt8]
    let piece: Int
    let pauseMicroseconds: UInt32

    init(fd: Int32, data: [UInt8], piece: Int, pauseMicroseconds: UInt32) {
        self.fd = fd
        self.data = data
        self.piece = piece
        self.pauseMicroseconds = pauseMicroseconds
    }

    func run() {
        var offset = 0
        while offset < data.count {
            let n = min(piece, data.count - offset)
            let written = data.withUnsafeBytes { write(fd, $0.baseAddress! + offset, n) }
            if written < 0 {
                if errno == EINTR { continue }
                break  // EPIPE: the reader stopped early
            }
            offset += written
            if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
        }
        close(fd)
    }
}

/// Runs `body` with the read end of a pipe that a writer thread fills with
/// `data` (in `piece`-byte writes, `pauseMicroseconds` apart) and then closes.
func withPipe<T>(
    feeding data: [UInt8], piece: Int = 1 << 16, pauseMicroseconds: UInt32 = 0,
    _ body: (FileDescriptor) throws -> T
) throws -> T {
    signal(SIGPIPE, SIG_IGN)
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw TestIOError(description: "pipe failed: errno \(errno)") }
    let writer = PipeWriter(fd: fds[1], data: data, piece: max(piece, 1), pauseMicroseconds: pauseMicroseconds)
    let context = Unmanaged.passRetained(writer).toOpaque()
    var thread = pthread_t()
    let started = pthread_create(&thread, nil, { context in
        let writer = Unmanaged<PipeWriter>.fromOpaque(context!).takeRetainedValue()
        writer.run()
        return nil
    }, context)
    guard started == 0 else {
        Unmanaged<PipeWriter>.fromOpaque(context).release()
        close(fds[0]); close(fds[1])
        throw TestIOError(description: "pthread_create failed: \(started)")
    }
    let reader = FileDescriptor(raw: fds[0], path: "<pipe>")
    defer {
        close(fds[0])  // unblocks a writer whose reader stopped early
        pthread_join(thread, nil)
    }
    return try body(reader)
}

// MARK: Reading records

struct ReadResult {
    var records: [(offset: UInt64, record: Decoded)] = []
    var fault: RecordFault?
}

/// Every record RecordReader hands out, and the fault it stops at, if any.
func readRecords(
    from source: FileDescriptor, maxRecord: Int = RecordLayout.defaultMaxRecord, verify: Bool = true,
    startOffset: UInt64 = 0, chunk: Int = 1 << 20
) throws -> ReadResult {
    var result = ReadResult()
    let reader = RecordReader(source: source, maxRecord: maxRecord, verify: verify, startOffset: startOffset, chunk: chunk)
    do {
        try reader.forEach { view, offset in result.records.append((offset, Decoded(view))) }
    } catch let fault as RecordFault {
        result.fault = fault
    }
    return result
}

/// Reads `data` from a temporary file.
func readRecords(
    file data: [UInt8], maxRecord: Int = RecordLayout.defaultMaxRecord, verify: Bool = true,
    startOffset: UInt64 = 0, chunk: Int = 1 << 20
) throws -> ReadResult {
    let file = try TempFile(data)
    let fd = try file.open(O_RDONLY)
    defer { fd.close() }
    return try readRecords(from: fd, maxRecord: maxRecord, verify: verify, startOffset: startOffset, chunk: chunk)
}

// MARK: JSON output

/// The JSON lines RecordJSON.write produces for `records` (each a whole
/// encoded record, parsed with `verify`), written through an OutputBuffer
/// whose sink is a temporary file, then read back from the file.
func jsonOutput(
    _ records: [(bytes: [UInt8], offset: UInt64)], segment: String? = nil, includeValue: Bool = true,
    verify: Bool = true, bufferCapacity: Int = 1 << 20
) throws -> [UInt8] {
    let file = try TempFile()
    let sink = try file.open(O_WRONLY | O_TRUNC)
    let out = OutputBuffer(sink: sink, capacity: bufferCapacity)
    let shape = RecordJSON.Shape(segment: segment, includeValue: includeValue)
    for (bytes, offset) in records {
        try bytes.withUnsafeBytes { raw in
            let view = try RecordView.parse(raw, maxRecord: RecordLayout.defaultMaxRecord, verify: verify)
            try RecordJSON.write(view, offset: offset, shape: shape, to: out)
        }
    }
    try out.flush()
    sink.close()
    return try file.contents()
}

/// One record's JSON line as text.
func jsonLine(
    _ record: [UInt8], offset: UInt64 = 0, segment: String? = nil, includeValue: Bool = true, verify: Bool = true
) throws -> String {
    String(decoding: try jsonOutput([(record, offset)], segment: segment, includeValue: includeValue, verify: verify),
           as: UTF8.self)
}

/// The line the contract prescribes, assembled by hand. `keyJSON`, `valueJSON`
/// and `segmentJSON` are already-escaped string bodies.
func expectedLine(
    segmentJSON: String? = nil, offset: UInt64, length: Int, type: String, keyJSON: String,
    valueJSON: String? = nil, valueB64: String? = nil, timestamp: UInt64, checksum: UInt32
) -> String {
    var s = "{"
    if let segmentJSON { s += "\"segment\":\"\(segmentJSON)\"," }
    s += "\"offset\":\(offset),\"length\":\(length),\"type\":\"\(type)\",\"key\":\"\(keyJSON)\""
    if let valueJSON { s += ",\"value\":\"\(valueJSON)\"" }
    if let valueB64 { s += ",\"value_b64\":\"\(valueB64)\"" }
    s += ",\"timestamp\":\(timestamp),\"checksum\":\"\(hex8(checksum))\"}\n"
    return s
}

// MARK: JSON input

/// A RecordInput copied out of the parser's buffers.
struct ParsedLine: Equatable, CustomStringConvertible {
    var type: RecordType
    var key: [UInt8]
    var value: [UInt8]
    var timestamp: UInt64?

    var description: String { "\(type.name) key=\(hexString(key)) value=\(hexString(value)) ts=\(String(describing: timestamp))" }
}

func parseLine(_ line: [UInt8], parser: RecordLineParser = RecordLineParser()) -> Result<ParsedLine?, JSONLineError> {
    line.withUnsafeBytes { raw in
        Result { () throws(JSONLineError) -> ParsedLine? in
            guard let input = try parser.parse(raw) else { return nil }
            return ParsedLine(type: input.type, key: Array(input.key), value: Array(input.value), timestamp: input.timestamp)
        }
    }
}

func parseLine(_ line: String, parser: RecordLineParser = RecordLineParser()) -> Result<ParsedLine?, JSONLineError> {
    parseLine(utf8(line), parser: parser)
}

/// The error for a line that must be rejected, or nil (a test failure) if it parsed.
func lineError(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) -> JSONLineError? {
    lineError(utf8(line), sourceLocation: sourceLocation)
}

func lineError(_ line: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> JSONLineError? {
    let result = parseLine(line)
    if case .success(let parsed) = result {
        Issue.record("expected an error, parsed \(String(describing: parsed))", sourceLocation: sourceLocation)
    }
    return result.failure
}

/// The record a line must parse to, or nil (a test failure) if it did not.
func parsedLine(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) -> ParsedLine? {
    switch parseLine(line) {
    case .success(let parsed?): return parsed
    case .success(nil):
        Issue.record("line parsed as blank", sourceLocation: sourceLocation)
    case .failure(let error):
        Issue.record("line rejected: \(error.message)", sourceLocation: sourceLocation)
    }
    return nil
}

/// The 1-based column of the first occurrence of `needle` in `line`.
func column(of needle: String, in line: String) -> Int {
    let hay = utf8(line), n = utf8(needle)
    for i in 0...(hay.count - n.count) where Array(hay[i..<(i + n.count)]) == n { return i + 1 }
    preconditionFailure("\(needle) not in \(line)")
}
