// Fuzz target `index-line`: arbitrary bytes as one entry line of an index
// (index.json, see Sources/Common/Index.swift), read by IndexLineParser, the
// parser `logidx get` runs on every line its binary search probes, and
// compared with an independent model: the RFC 8259 parser below and the
// entry's rules (the line starts `{"key":"`; `type` a string, "put" or
// "delete", the last one counting; `segment`, `offset`, `length` and
// `timestamp` non-negative 64-bit integers, the last of each counting, a
// segment number past Int.max read as Int.max; other fields any JSON; the
// entry ends at its closing brace, whatever follows).
//
// Invariants (names for FUZZ_SKIP, see Fuzz/README.md):
//   parse-model     key(of:) and location(of:) accept, refuse and read the
//                   line as the model does, and stop at the entry's brace
//   roundtrip       an accepted entry, written back as an entry line (by the
//                   model, and by IndexLine.write), reads back as the same key
//                   and location
//   index-file      an accepted entry written by IndexBuilder into a whole
//                   index is one JSON document, and IndexFile (logidx get)
//                   finds the key in it, at the same location

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

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A non-negative JSON integer that fits in 64 bits, as the entry fields take it.
func unsignedValue(_ v: JSON) -> UInt64? {
    guard case .number(let text) = v, text.allSatisfy({ JSONModel.isDigit($0) }) else { return nil }
    return UInt64(String(decoding: text, as: UTF8.self))
}


// MARK: - The model of an entry line

struct Entry: Equatable, CustomStringConvertible {
    var key: [UInt8]
    var type: UInt8
    var segment: UInt64
    var offset: UInt64
    var length: UInt64
    var timestamp: UInt64
    var description: String { "key \(key) type \(type) segment \(segment) offset \(offset) length \(length) timestamp \(timestamp)" }
}

let entryPrefix = bytes("{\"key\":\"")

/// The key of an entry line: the string after `{"key":"`.
func modelKey(_ a: [UInt8]) -> [UInt8]? {
    guard a.count > entryPrefix.count, a.starts(with: entryPrefix) else { return nil }
    var m = JSONModel(a)
    m.i = entryPrefix.count - 1
    return m.string()
}

/// The entry and the offset of its closing brace.
func modelEntry(_ a: [UInt8]) -> (Entry, end: Int)? {
    guard let key = modelKey(a) else { return nil }
    var m = JSONModel(a)
    guard case .object(let fields)? = m.value(depth: 0) else { return nil }
    var type: UInt8?
    var numbers: [String: UInt64] = [:]
    for field in fields.dropFirst() {
        let name = String(decoding: field.name, as: UTF8.self)
        switch name {
        case "type":
            guard case .string(let s) = field.value else { return nil }
            type = s == bytes("put") ? 1 : s == bytes("delete") ? 2 : nil
        case "segment", "offset", "length", "timestamp":
            guard let n = unsignedValue(field.value) else { return nil }
            numbers[name] = n
        default:
            break
        }
    }
    guard let type, let segment = numbers["segment"], let offset = numbers["offset"], let length = numbers["length"],
          let timestamp = numbers["timestamp"] else { return nil }
    // A segment number past Int.max reads as Int.max: no index lists that
    // many segments, so either way the entry names none of them.
    let clamped = min(segment, UInt64(Int.max))
    return (Entry(key: key, type: type, segment: clamped, offset: offset, length: length, timestamp: timestamp), m.i - 1)
}

// MARK: - Checks

nonisolated(unsafe) let lines = IndexLineParser()
/// A scratch directory for the index file, removed at exit.
let directory: String = {
    var parent = "/tmp"
    if access("/dev/shm", W_OK) == 0 { parent = "/dev/shm" } else if let t = getenv("TMPDIR") { parent = String(cString: t) }
    var template = Array("\(parent)/logkit-fuzz-index-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(made != nil, "cannot create a scratch directory in \(parent)")
    atexit {
        _ = unlink(directory + "/index.json")
        _ = rmdir(directory)
    }
    return String(cString: made!)
}()

func entry(_ key: [UInt8], _ location: IndexLocation) -> Entry {
    Entry(key: key, type: location.type.rawValue, segment: UInt64(location.segment), offset: location.offset,
          length: location.length, timestamp: location.timestamp)
}

/// What IndexLineParser reads in `line`, and where it stopped.
func library(_ line: [UInt8]) -> (key: [UInt8]?, entry: Entry?, end: Int) {
    line.withUnsafeBytes { raw in
        let text = raw.baseAddress == nil ? UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: 8), count: 0) : raw
        let key = try? Array(lines.key(of: text))
        guard let location = try? lines.location(of: text) else { return (key, nil, -1) }
        let end = lines.i
        guard let again = try? Array(lines.key(of: text)) else { return (key, nil, end) }
        return (key, entry(again, location), end)
    }
}

/// An entry line as the index writes one: JSON escapes for `"`, `\\` and
/// control characters, everything else as its UTF-8 bytes.
func entryLine(_ e: Entry) -> [UInt8] {
    var out = bytes("{\"key\":\"")
    for b in e.key {
        switch b {
        case 0x22: out += bytes("\\\"")
        case 0x5C: out += bytes("\\\\")
        case 0..<0x20: out += bytes("\\u00") + bytes(String(b >> 4, radix: 16)) + bytes(String(b & 15, radix: 16))
        default: out.append(b)
        }
    }
    out += bytes("\",\"type\":\"\(e.type == 1 ? "put" : "delete")\",\"segment\":\(e.segment),\"offset\":\(e.offset),")
    out += bytes("\"length\":\(e.length),\"timestamp\":\(e.timestamp)},")
    return out
}

func checkIndexFile(_ e: Entry) {
    // Only what an index can hold: a segment the header lists, a record end
    // that fits in 64 bits.
    guard e.segment < 8, e.offset <= UInt64.max - e.length else { return }
    let builder = IndexBuilder()
    for n in 0...Int(e.segment) { _ = builder.segmentNumber("s\(n).dat") }
    let location = IndexLocation(type: RecordType(rawValue: e.type)!, segment: Int(e.segment), offset: e.offset,
                                 length: e.length, timestamp: e.timestamp)
    e.key.withUnsafeBytes { key in
        let text = key.baseAddress == nil ? UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: 8), count: 0) : key
        builder.add(key: text, at: location, checksum: 0x1234_5678)
    }
    let out = ByteBuffer(capacity: 256)
    _ = try! builder.write(to: out, created: 1_700_000_000_000, storedPath: { $0 })
    let document = Array(out.bytes)
    var m = JSONModel(document)
    m.whitespace()
    let parsed = m.value(depth: 0)
    m.whitespace()
    check("index-file", parsed != nil && m.atEnd, "IndexBuilder wrote a document that is not JSON: \(String(decoding: document, as: UTF8.self))")

    let path = directory + "/index.json"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0)
    document.withUnsafeBytes { precondition(write(fd, $0.baseAddress, $0.count) == $0.count) }
    close(fd)
    do {
        let index = try IndexFile(path: path)
        let found = try e.key.withUnsafeBytes { key in
            let text = key.baseAddress == nil ? UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: 8), count: 0) : key
            return try index.find(text)
        }
        check("index-file", found == location, "IndexFile finds \(e.key) at \(String(describing: found)), written \(location)")
        var position = 0
        let galloped = try e.key.withUnsafeBytes { key in
            let text = key.baseAddress == nil ? UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: 8), count: 0) : key
            return try index.find(text, after: &position)
        }
        check("index-file", galloped == location, "IndexFile.find(after:) finds \(e.key) at \(String(describing: galloped)), written \(location)")
    } catch {
        check("index-file", false, "IndexFile refused the index IndexBuilder wrote: \(error)\n\(String(decoding: document, as: UTF8.self))")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = Array(UnsafeRawBufferPointer(start: data, count: size))
    let shown = String(decoding: line, as: UTF8.self).debugDescription
    let got = library(line)
    let expectedKey = modelKey(line)
    check("parse-model", got.key == expectedKey, "\(shown): key(of:) gives \(String(describing: got.key)), model says \(String(describing: expectedKey))")
    let expected = modelEntry(line)
    check("parse-model", got.entry == expected?.0 && (expected == nil || got.end == expected!.end),
          "\(shown): location(of:) gives \(String(describing: got.entry)) ending at \(got.end), model says \(String(describing: expected))")
    guard let e = got.entry else { return 0 }

    let again = library(entryLine(e))
    check("roundtrip", again.entry == e && again.key == e.key,
          "\(shown) written back as \(String(decoding: entryLine(e), as: UTF8.self).debugDescription) reads as \(String(describing: again.entry))")
    // The library's own entry writer, as the index holds the line.
    if e.segment <= UInt64(Int.max) {
        let location = IndexLocation(type: RecordType(rawValue: e.type)!, segment: Int(e.segment), offset: e.offset,
                                     length: e.length, timestamp: e.timestamp)
        for last in [false, true] {
            let out = ByteBuffer(capacity: 64)
            e.key.withUnsafeBytes { key in
                let text = key.baseAddress == nil ? UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: 8), count: 0) : key
                try! IndexLine.write(key: text, location: location, last: last, to: out)
            }
            let written = Array(out.bytes)
            let ending = last ? bytes("}\n") : bytes("},\n")
            check("roundtrip", written.suffix(ending.count) == ending[...] && written.dropLast().firstIndex(of: 0x0A) == nil,
                  "IndexLine.write(last: \(last)) wrote \(String(decoding: written, as: UTF8.self).debugDescription)")
            let read = library(Array(written.dropLast()))
            check("roundtrip", read.entry == e && read.key == e.key,
                  "\(shown) written back by IndexLine.write as \(String(decoding: written, as: UTF8.self).debugDescription) reads as \(String(describing: read.entry))")
        }
    }
    checkIndexFile(e)
    return 0
}
