// Reading an index without loading it: the file is mapped, line 1 (the
// header) is parsed, and a key is found by binary search over the byte range
// of the entry lines. Each probe finds the line around a byte position and
// reads only its key, so a lookup touches O(log n) lines of the file.

import LogFormat
import LogIO
import LogJSON

import Glibc

/// An index that cannot be read as one.
public struct IndexError: Error {
    public let path: String
    public let reason: String

    public var message: String { "\(path): \(reason)" }
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
    /// How much of the mapping `release` gave back, in steps of 1 MiB.
    private var released = 0
    private static let releaseUnit = 1 << 20

    public init(path: String) throws {
        self.path = path
        let file = try FileDescriptor.open(path, O_RDONLY)
        defer { file.close() }
        var info = stat()
        guard fstat(file.raw, &info) == 0 else { throw SystemError(errno: errno, operation: "stat", path: path) }
        guard info.st_mode & S_IFMT != S_IFDIR else { throw SystemError(errno: EISDIR, operation: "open", path: path) }
        let size = Int(info.st_size)
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
        let opening = Array("\"entries\":[".utf8)
        guard bytes[0..<firstNewline].reversed().starts(with: opening.reversed()) else {
            throw bad("not an index: line 1 does not end with \"entries\":[")
        }
        let header = Array(bytes[0..<firstNewline]) + Array("]}".utf8)
        let parsed: Result<IndexHeaderFields, JSONLineError> = header.withUnsafeBytes { raw in
            Result { () throws(JSONLineError) in try IndexHeaderParser().parse(raw) }
        }
        guard case .success(let fields) = parsed else {
            if case .failure(let error) = parsed { throw bad("not an index: line 1: \(error.message)") }
            preconditionFailure()
        }
        guard let version = fields.version else { throw bad("not an index: no \"version\"") }
        guard version == IndexFormat.version else { throw bad("unsupported index version \(version)") }
        created = fields.created ?? 0
        count = fields.count ?? 0
        let directory = FileSystem.directory(of: path)
        var segments: [IndexedSegment] = []
        for (n, segment) in fields.segments.enumerated() {
            guard let stored = segment.path, let size = segment.size,
                  let checksum = segment.lastChecksum.flatMap(Hex.parseWord), let lastOffset = segment.lastOffset
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

    /// The entry of `key`, by binary search over all entry lines.
    public func find(_ key: UnsafeRawBufferPointer) throws -> IndexLocation? {
        try search(key, from: entriesStart, to: entriesEnd).location
    }

    /// Looks up keys in ascending order cheaply: `position` starts at 0 and
    /// carries where the previous key was found, and the search gallops
    /// forward from there, so neighbouring keys cost a few nearby probes.
    public func find(_ key: UnsafeRawBufferPointer, after position: inout Int) throws -> IndexLocation? {
        guard let base = mapping else { return nil }
        var low = max(position, entriesStart)
        var step = 256
        var high = entriesEnd
        while low < entriesEnd {
            let probe = nextLine(base, from: min(low + step, entriesEnd) - 1, before: entriesEnd)
            if probe >= entriesEnd { break }
            let probeEnd = min(nextLine(base, from: probe, before: entriesEnd), entriesEnd + 1) - 1
            let order = compareBytes(try self.key(at: probe, end: probeEnd), key)
            if order >= 0 {
                high = probeEnd + 1
                break
            }
            low = probeEnd + 1
            step *= 2
        }
        let result = try search(key, from: low, to: min(high, entriesEnd))
        position = result.position
        return result.location
    }

    /// One entry line as `forEachEntry` shows it.
    public struct EntryLine {
        public let key: UnsafeRawBufferPointer
        /// The line without its newline and trailing comma.
        public let text: UnsafeRawBufferPointer
        fileprivate let index: IndexFile
        fileprivate let start: Int
        fileprivate let end: Int

        public func location() throws -> IndexLocation { try index.location(at: start, end: end) }
    }

    /// The entry whose line starts at `position` (0 for the first) and where
    /// the next one starts, or nil past the last: for walking several
    /// indexes side by side. The key is valid until the next call.
    public func entry(at position: Int) throws -> (entry: EntryLine, next: Int)? {
        guard let base = mapping else { return nil }
        let start = max(position, entriesStart)
        guard start < entriesEnd else { return nil }
        let next = min(nextLine(base, from: start, before: entriesEnd), entriesEnd + 1)
        let end = next - 1
        var textEnd = end
        if textEnd > start && (base + textEnd - 1).load(as: UInt8.self) == UInt8(ascii: ",") { textEnd -= 1 }
        return (EntryLine(key: try key(at: start, end: end), text: line(start, textEnd), index: self, start: start, end: end), next)
    }

    /// Lets the kernel take back the mapped pages before `position`: a walk
    /// through a whole index would otherwise keep all of it resident.
    /// Touching them again reads them back from the page cache.
    public func release(before position: Int) {
        guard let base = mapping else { return }
        let end = (min(position, mappedSize) / IndexFile.releaseUnit) * IndexFile.releaseUnit
        guard end > released else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base) + released, end - released, MADV_DONTNEED)
        released = end
    }

    /// Calls `body` with each entry in key order, from the first whose key is
    /// not less than `lowest` (from the first if nil), until it returns
    /// false: a range read costs one binary search, then a line per entry.
    public func forEachEntry(from lowest: UnsafeRawBufferPointer? = nil, _ body: (EntryLine) throws -> Bool) throws {
        var position = entriesStart
        if let lowest { position = try search(lowest, from: entriesStart, to: entriesEnd).position }
        while let (entry, next) = try entry(at: position) {
            guard try body(entry) else { return }
            position = next
        }
    }


    /// The first and last keys of the index, nil if it has no entries.
    public func keyBounds() throws -> (first: [UInt8], last: [UInt8])? {
        guard let base = mapping, entriesEnd > entriesStart else { return nil }
        var first: [UInt8] = []
        try forEachEntry { line in
            first = Array(line.key)
            return false
        }
        // The last entry line starts after the last newline before the end.
        var start = entriesEnd - 1
        while start > entriesStart && (base + start - 1).load(as: UInt8.self) != 0x0A { start -= 1 }
        let end = min(nextLine(base, from: start, before: entriesEnd), entriesEnd + 1) - 1
        return (first, Array(try key(at: start, end: end)))
    }

    /// Binary search in the lines within `low..<high`; `low` is a line start.
    /// Each probe reads the first line that starts at or after the middle (or
    /// at `low` if none does before `high`), so the range shrinks every step
    /// and only forward scans are needed. Returns the entry and the start of
    /// its line, or nil and where the key would be.
    private func search(_ key: UnsafeRawBufferPointer, from low: Int, to high: Int) throws -> (location: IndexLocation?, position: Int) {
        guard let base = mapping, high > low else { return (nil, low) }
        var low = low
        var high = high
        while low < high {
            let middle = low + (high - low) / 2
            var lineStart = middle == low ? low : nextLine(base, from: middle - 1, before: high)
            if lineStart >= high { lineStart = low }
            let lineEnd = min(nextLine(base, from: lineStart, before: high), high + 1) - 1
            let order = compareBytes(try self.key(at: lineStart, end: lineEnd), key)
            if order == 0 { return (try location(at: lineStart, end: lineEnd), lineStart) }
            if order < 0 { low = lineEnd + 1 } else { high = lineStart }
        }
        return (nil, low)
    }

    private func line(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapping! + start, count: end - start)
    }

    private func key(at start: Int, end: Int) throws -> UnsafeRawBufferPointer {
        do throws(JSONLineError) {
            return try lines.key(of: line(start, end))
        } catch {
            throw IndexError(path: path, reason: "byte \(start): \(error.message)")
        }
    }

    fileprivate func location(at start: Int, end: Int) throws -> IndexLocation {
        let location: IndexLocation
        do throws(JSONLineError) {
            location = try lines.location(of: line(start, end))
        } catch {
            throw IndexError(path: path, reason: "byte \(start): \(error.message)")
        }
        guard location.segment < segments.count else {
            throw IndexError(path: path, reason: "byte \(start): segment \(location.segment) is not in the header")
        }
        return location
    }

    /// The position after the first newline at or after `position`, or
    /// `limit + 1` if there is none before `limit`.
    @inline(__always)
    private func nextLine(_ base: UnsafeRawPointer, from position: Int, before limit: Int) -> Int {
        guard position < limit, let newline = memchr(base + position, 0x0A, limit - position) else { return limit + 1 }
        return UnsafeRawPointer(newline) - base + 1
    }
}
