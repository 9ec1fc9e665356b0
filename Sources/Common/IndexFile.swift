// Reading an index without loading it: the file is mapped, line 1 (the
// header) is parsed, and a key is found by binary search over the byte range
// of the entry lines. Each probe finds the line around a byte position and
// reads only its key, so a lookup touches O(log n) lines of the file.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An index that cannot be read as one.
public struct IndexError: Error, ReportableError {
    public let path: String
    public let reason: String

    public var message: String { "\(path): \(reason)" }
    public var exitCode: ExitCode { .dataRejected }
}

public final class IndexFile {
    public let path: String
    public let created: UInt64
    /// The number of entries, as the header says.
    public let count: UInt64
    /// Segments with their paths resolved against the index's directory.
    public let segments: [IndexedSegment]
    private let mapping: UnsafeRawPointer?
    private let mappedSize: Int
    /// Byte range of the entry lines.
    private let entriesStart: Int
    private let entriesEnd: Int
    private let lines = IndexLineParser()

    public init(path: String) throws {
        self.path = path
        let file = try FileDescriptor.open(path, O_RDONLY)
        defer { file.close() }
        let size = Int(try file.size())
        mappedSize = size
        if size > 0 {
            guard let address = mmap(nil, size, PROT_READ, MAP_SHARED, file.raw, 0), address != MAP_FAILED else {
                throw SystemError(errno: errno, operation: "mmap", path: path)
            }
            mapping = UnsafeRawPointer(address)
        } else {
            mapping = nil
        }
        let bytes = UnsafeRawBufferPointer(start: mapping, count: size)
        func bad(_ reason: String) -> IndexError { IndexError(path: path, reason: reason) }

        guard let firstNewline = bytes.firstIndex(of: 0x0A) else { throw bad("not an index: no header line") }
        let header = Array(bytes[0..<firstNewline]) + Array("]}".utf8)
        let parsed: Result<JSONValue, JSONLineError> = header.withUnsafeBytes { raw in
            Result { () throws(JSONLineError) in try JSONValue.parse(raw) }
        }
        guard case .success(let document) = parsed else {
            if case .failure(let error) = parsed { throw bad("not an index: line 1: \(error.message)") }
            preconditionFailure()
        }
        guard let version = document["version"]?.uint64 else { throw bad("not an index: no \"version\"") }
        guard version == IndexFormat.version else { throw bad("unsupported index version \(version)") }
        created = document["created"]?.uint64 ?? 0
        count = document["count"]?.uint64 ?? 0
        let directory = FileSystem.directory(of: path)
        var segments: [IndexedSegment] = []
        for (n, value) in (document["segments"]?.array ?? []).enumerated() {
            guard let stored = value["path"]?.string, let size = value["size"]?.uint64,
                  let checksumText = value["last_checksum"]?.string, let checksum = Hex.parseWord(checksumText),
                  let lastOffset = value["last_offset"]?.uint64
            else { throw bad("segment \(n) in the header lacks path, size, last_checksum or last_offset") }
            let resolved = stored.hasPrefix("/") || directory == "." ? stored : directory + "/" + stored
            segments.append(IndexedSegment(path: resolved, size: size, lastChecksum: checksum, lastOffset: lastOffset))
        }
        self.segments = segments

        var end = size
        if end > firstNewline + 1 && bytes[end - 1] == 0x0A { end -= 1 }
        guard end >= 2, bytes[end - 2] == UInt8(ascii: "]"), bytes[end - 1] == UInt8(ascii: "}") else {
            throw bad("truncated index: the last line is not ]}")
        }
        entriesStart = firstNewline + 1
        entriesEnd = max(entriesStart, end - 2)
    }

    deinit {
        if let mapping { munmap(UnsafeMutableRawPointer(mutating: mapping), mappedSize) }
    }

    /// The entry of `key`, by binary search over the entry lines.
    public func find(_ key: UnsafeRawBufferPointer) throws -> IndexLocation? {
        guard let base = mapping, entriesEnd > entriesStart else { return nil }
        var low = entriesStart
        var high = entriesEnd
        while low < high {
            let middle = low + (high - low) / 2
            var lineStart = middle
            while lineStart > low && base.load(fromByteOffset: lineStart - 1, as: UInt8.self) != 0x0A { lineStart -= 1 }
            var lineEnd = middle
            while lineEnd < high && base.load(fromByteOffset: lineEnd, as: UInt8.self) != 0x0A { lineEnd += 1 }
            let line = UnsafeRawBufferPointer(start: base + lineStart, count: lineEnd - lineStart)
            let lineKey: UnsafeRawBufferPointer
            do {
                lineKey = try lines.key(of: line)
            } catch {
                throw IndexError(path: path, reason: "byte \(lineStart): \(error.message)")
            }
            let order = compareBytes(lineKey.baseAddress ?? base, lineKey.count, key.baseAddress ?? base, key.count)
            if order == 0 {
                let location: IndexLocation
                do {
                    location = try lines.location(of: line)
                } catch {
                    throw IndexError(path: path, reason: "byte \(lineStart): \(error.message)")
                }
                guard location.segment < segments.count else {
                    throw IndexError(path: path, reason: "byte \(lineStart): segment \(location.segment) is not in the header")
                }
                return location
            }
            if order < 0 { low = lineEnd + 1 } else { high = lineStart }
        }
        return nil
    }
}

/// Reads the fields of one entry line.
final class IndexLineParser: JSONCursor {
    private let keyScratch = ByteBuffer()

    /// The key of an entry line, which starts `{"key":"`.
    func key(of line: UnsafeRawBufferPointer) throws(JSONLineError) -> UnsafeRawBufferPointer {
        guard start(line), line.starts(with: Self.prefix) else {
            throw JSONLineError(column: nil, reason: "not an index entry line")
        }
        i = Self.prefix.count - 1
        return try string(into: keyScratch)
    }

    private static let prefix = Array("{\"key\":\"".utf8)

    /// The location fields of an entry line, after its key.
    func location(of line: UnsafeRawBufferPointer) throws(JSONLineError) -> IndexLocation {
        _ = try key(of: line)
        var type: RecordType?
        var numbers: [UInt64?] = [nil, nil, nil, nil]
        while true {
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { break }
            try expect(UInt8(ascii: ","), "expected ',' or '}' after a field")
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw syntax("expected '\"' to start a field name") }
            let name = try string(into: otherScratch)
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "expected ':' after a field name")
            skipWhitespace()
            if equals(name, "type") {
                guard peek() == UInt8(ascii: "\"") else { throw syntax("\"type\" must be a string") }
                let text = try string(into: otherScratch)
                type = equals(text, "put") ? .put : equals(text, "delete") ? .delete : nil
            } else if let slot = Self.numberFields.firstIndex(where: { equals(name, $0) }) {
                numbers[slot] = try unsigned()
            } else {
                try skipValue(depth: 1)
            }
        }
        guard let type, let segment = numbers[0], let offset = numbers[1], let length = numbers[2], let timestamp = numbers[3] else {
            throw JSONLineError(column: nil, reason: "entry lacks type, segment, offset, length or timestamp")
        }
        return IndexLocation(type: type, segment: Int(clamping: segment), offset: offset, length: length, timestamp: timestamp)
    }

    private static let numberFields: [StaticString] = ["segment", "offset", "length", "timestamp"]
}

extension Hex {
    /// Parses `0x` and eight hex digits.
    public static func parseWord(_ text: String) -> UInt32? {
        guard text.count == 10, text.hasPrefix("0x") else { return nil }
        return UInt32(text.dropFirst(2), radix: 16)
    }
}
