// The index (contract section 4): one JSON document that is also a file of
// lines, so jq reads it whole and `logidx get` binary-searches it:
//
//   {"version":1,"created":MS,"count":2,"segments":[{"path":"segment-0001.dat","size":N,"last_offset":N,"last_checksum":"0x..."}],"entries":[
//   {"key":"a","type":"put","segment":0,"offset":0,"length":33,"timestamp":1700000000000},
//   {"key":"b","type":"delete","segment":0,"offset":33,"length":29,"timestamp":1700000000001}
//   ]}
//
// Line 1 holds everything but the entries. Then one entry per line, the
// newest record of each key, sorted by the key's UTF-8 bytes; every entry
// line but the last ends with a comma. The last line is `]}`.
//
// A segment's `size` is the end of its last indexed record and
// `last_checksum` that record's checksum. Two fields are additions to the
// contract's: `last_offset`, where that record starts, so a reader can check
// with one positioned read that the segment is still the one indexed, and
// `count`, the number of entries, so nobody has to count lines. Segment
// paths are relative to the index's directory when the index's location is
// known, so the data directory can move with its index.

import LogFormat
import LogIO
import LogJSON

public struct IndexedSegment: Equatable, Sendable {
    public var path: String
    public var size: UInt64
    public var lastChecksum: UInt32
    public var lastOffset: UInt64
}

/// Applies records in order and writes the index.
public final class IndexBuilder {
    private struct Entry {
        var keyStart: Int
        var keyLength: Int
        var location: IndexLocation
    }

    private let keys = ByteBuffer(capacity: 1 << 20)
    private var entries: [Entry] = []
    public private(set) var segments: [IndexedSegment] = []
    private var segmentNumbers: [String: Int] = [:]
    private var lastSegmentName: [UInt8] = []
    private var lastSegmentNumber = -1
    /// Per segment, where the next record starts if lines arrive in order.
    /// Lines out of order are allowed (two writers' address files), but then
    /// `coverageGap` sorts them to check that they still cover each segment.
    private var expectedOffsets: [UInt64] = []
    private var inOrder = true

    public init() {}

    /// The number of the segment with this path, added if new. Scan output
    /// repeats the same path line after line, so the last one is remembered.
    public func segmentNumber(_ path: UnsafeRawBufferPointer) -> Int {
        if lastSegmentNumber >= 0 && path.elementsEqual(lastSegmentName) { return lastSegmentNumber }
        let name = String(decoding: path, as: UTF8.self)
        let number = segmentNumber(name)
        lastSegmentName = Array(path)
        lastSegmentNumber = number
        return number
    }

    public func segmentNumber(_ path: String) -> Int {
        if let number = segmentNumbers[path] { return number }
        segments.append(IndexedSegment(path: path, size: 0, lastChecksum: 0, lastOffset: 0))
        expectedOffsets.append(0)
        segmentNumbers[path] = segments.count - 1
        return segments.count - 1
    }

    /// Records one record; a later one of the same key replaces it.
    public func add(key: UnsafeRawBufferPointer, at location: IndexLocation, checksum: UInt32) {
        let keyStart = keys.count
        keys.append(key.baseAddress!, key.count)
        entries.append(Entry(keyStart: keyStart, keyLength: key.count, location: location))
        let end = location.offset + location.length
        if location.offset == expectedOffsets[location.segment] {
            expectedOffsets[location.segment] = end
        } else {
            inOrder = false
        }
        if end >= segments[location.segment].size {
            segments[location.segment].size = end
            segments[location.segment].lastOffset = location.offset
            segments[location.segment].lastChecksum = checksum
        }
    }

    /// Adds one line of scan output (`logscan`, with or without values, or the
    /// address lines of `logenc -a`).
    public func add(scanLine record: RecordInput, line: Int) throws(InputLineError) {
        if record.isCommit { throw InputLineError(line: line, reason: "a commit line is not scan output") }
        let address = record.address
        if let field = address.malformed {
            let kind = field == "segment" ? "a non-empty path" : field == "checksum" ? "0x and eight hex digits" : "a non-negative integer"
            throw InputLineError(line: line, reason: "\"\(field)\" must be \(kind)")
        }
        func missing(_ field: String) -> InputLineError {
            InputLineError(line: line, reason: "missing \"\(field)\" (logidx reads the output of logscan or logenc -a)")
        }
        guard let segment = address.segment else { throw missing("segment") }
        guard let offset = address.offset else { throw missing("offset") }
        guard let length = address.length else { throw missing("length") }
        guard let checksum = address.checksum else { throw missing("checksum") }
        guard let timestamp = record.timestamp else { throw missing("timestamp") }
        let minimum = UInt64(RecordLayout.headerSize + record.key.count)
        guard length <= UInt64(RecordLayout.maxRecordLength), !offset.addingReportingOverflow(length).overflow else {
            throw InputLineError(line: line, reason: "\"offset\" \(offset) and \"length\" \(length) are past any segment")
        }
        guard length >= minimum else {
            throw InputLineError(line: line, reason: "\"length\" \(length) is shorter than the header and key (\(minimum))")
        }
        let location = IndexLocation(type: record.type, segment: segmentNumber(segment), offset: offset, length: length, timestamp: timestamp)
        add(key: record.key, at: location, checksum: checksum)
    }

    /// Adds every line of scan output read from `source`; stops at the first
    /// malformed line with an InputLineError. `progress` is told the bytes read.
    public func addScanLines(from source: FileDescriptor, maxRecord: Int, progress: ((UInt64) -> Void)? = nil) throws {
        try RecordLineParser(requireValue: false).forEachRecord(in: source, maxRecord: maxRecord, { record, number in
            try add(scanLine: record, line: number)
        }, progress: progress)
        if let gap = coverageGap() { throw gap }
    }

    /// Scan lines must describe each segment whole, from offset 0 with no
    /// gap or overlap: an index of part of a segment would answer "not
    /// found" for keys it never saw.
    func coverageGap() -> IncompleteScan? {
        if inOrder { return nil }
        var order = entries.map { ($0.location.segment, $0.location.offset, $0.location.length) }
        order.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var segment = -1
        var next: UInt64 = 0
        for (number, offset, length) in order {
            if number != segment { segment = number; next = 0 }
            guard offset == next else { return IncompleteScan(path: segments[number].path, offset: next, found: offset) }
            next = offset + length
        }
        return nil
    }

    /// Adds every record of a segment, read from the file itself. `progress`
    /// is told the bytes read.
    ///
    /// A large segment's checksums are verified on a second CPU, through a
    /// second descriptor, while this thread walks and indexes it unverified.
    /// Damage is reported as the verified walk finds it, so the fault is the
    /// one a verified scan would throw; the builder then holds records past
    /// it, which is harmless because a builder that threw is never written.
    public func addSegment(_ reader: SegmentReader, maxRecord: Int, progress: ((UInt64) -> Void)? = nil) throws {
        let number = segmentNumber(reader.path)
        // Room for as many records as the segment could hold, so that
        // neither buffer is copied as it grows: untouched room is never
        // faulted in, and each record's key is at most its own bytes. At
        // least doubled when it grows: reserving exactly, segment after
        // segment, would copy every entry so far once per segment.
        let most = entries.count + Int(reader.size) / (RecordLayout.headerSize + 1)
        if most > entries.capacity { entries.reserveCapacity(max(most, 2 * entries.capacity)) }
        keys.reserve(Int(reader.size))
        func index(_ record: RecordView, _ offset: UInt64) {
            add(key: record.key,
                at: IndexLocation(type: record.type, segment: number, offset: offset, length: UInt64(record.length), timestamp: record.timestamp),
                checksum: record.checksum)
        }
        guard reader.size >= ParallelVerifier.minimumSize, ParallelVerifier.processors > 1,
              let checker = try? SegmentReader(path: reader.path), checker.identity == reader.identity else {
            return try reader.scan(maxRecord: maxRecord, verify: true, progress: progress, index)
        }
        let verification = BackgroundVerification(checker, upTo: reader.size, maxRecord: maxRecord)
        do {
            try reader.scan(maxRecord: maxRecord, verify: false, progress: progress, index)
        } catch {
            throw verification.wait() ?? error
        }
        if let fault = verification.wait() { throw fault }
    }

    /// Adds the committed records of a segment that may be being appended
    /// to, from `offset`: a record or batch still being written at the end
    /// is left for the next update. Returns how many records were added.
    @discardableResult
    public func addCommitted(_ reader: SegmentReader, from offset: UInt64, maxRecord: Int) throws -> Int {
        let number = segmentNumber(reader.path)
        var added = 0
        try reader.scanCommitted(from: offset, maxRecord: maxRecord) { record, offset in
            add(key: record.key,
                at: IndexLocation(type: record.type, segment: number, offset: offset, length: UInt64(record.length), timestamp: record.timestamp),
                checksum: record.checksum)
            added += 1
        }
        return added
    }

    /// Rebuilds the index at `indexPath` from the segment files themselves:
    /// the segments it lists, in its order, with `segment` added last if it
    /// was not among them. For rewriting an index after a segment changed
    /// under it (compaction moves every record).
    public static func rebuild(_ indexPath: String, including segment: String, maxRecord: Int) throws {
        var paths: [String] = []
        if FileSystem.exists(indexPath) { paths = try IndexFile(path: indexPath).segments.map(\.path) }
        let target = try FileSystem.identity(of: segment)
        if try !paths.contains(where: { try FileSystem.identity(of: $0) == target }) { paths.append(segment) }
        let builder = IndexBuilder()
        for path in paths { try builder.addSegment(try SegmentReader(path: path), maxRecord: maxRecord) }
        try builder.write(indexAt: indexPath)
    }

    /// Writes the index to `path` atomically, or to stdout if nil. Segment
    /// paths are stored relative to the index's directory when that is known
    /// (a path, or stdout redirected to a file), absolute otherwise.
    ///
    /// With `older`, the index of the same one segment up to where this
    /// builder's records start, the two are merged (see `writeMerged`).
    public func write(indexAt path: String?, mergingOver older: IndexFile? = nil) throws {
        let location = path ?? FileSystem.pathOfRegularFile(.standardOutput)
        let directory = location.map { FileSystem.absolutePath(FileSystem.directory(of: $0)) }
        func stored(_ segment: String) -> String {
            let absolute = FileSystem.absolutePath(segment)
            guard let directory else { return absolute }
            return FileSystem.relativePath(to: absolute, from: directory)
        }
        if let path {
            try FileSystem.writeAtomically(path) { file in
                let out = OutputBuffer(sink: file)
                if let older {
                    _ = try writeMerged(over: older, to: out, created: currentTimeMillis(), storedPath: stored)
                } else {
                    _ = try write(to: out, created: currentTimeMillis(), storedPath: stored)
                }
                try out.flush()
            }
        } else {
            let out = OutputBuffer(sink: .standardOutput)
            _ = try write(to: out, created: currentTimeMillis(), storedPath: stored)
            try out.flush()
        }
    }

    /// Where in `entries` the surviving ones are, sorted by key bytes: for
    /// each key, the last one added. Positions, not copies: an entry is tens
    /// of bytes and there may be millions.
    private func newestSorted() -> [Int] {
        let base = UnsafeRawPointer(keys.base)
        var order = Array(0..<entries.count)
        entries.withUnsafeBufferPointer { e in
            order.sort { a, b in
                let x = e[a], y = e[b]
                let c = compareBytes(base + x.keyStart, x.keyLength, base + y.keyStart, y.keyLength)
                if c != 0 { return c < 0 }
                // Within a segment the higher offset is the newer record,
                // whatever order the lines came in.
                return (x.location.segment, x.location.offset) < (y.location.segment, y.location.offset)
            }
            var kept = 0
            for n in order {
                if kept > 0 {
                    let last = e[order[kept - 1]], entry = e[n]
                    if last.keyLength == entry.keyLength && compareBytes(base + last.keyStart, last.keyLength, base + entry.keyStart, entry.keyLength) == 0 {
                        order[kept - 1] = n
                        continue
                    }
                }
                order[kept] = n
                kept += 1
            }
            order.removeLast(order.count - kept)
        }
        return order
    }

    /// Writes the index. `storedPath` turns a segment path as read into the
    /// path to store.
    public func write<Out: LineBuffer>(to out: Out, created: UInt64, storedPath: (String) -> String) throws(SystemError) -> Int {
        let sorted = newestSorted()
        try append(header(count: sorted.count, created: created, storedPath: storedPath), to: out)
        let base = UnsafeRawPointer(keys.base)
        for (n, position) in sorted.enumerated() {
            let entry = entries[position]
            try IndexLine.write(
                key: UnsafeRawBufferPointer(start: base + entry.keyStart, count: entry.keyLength),
                location: entry.location, last: n + 1 == sorted.count, to: out)
        }
        try append("]}\n", to: out)
        return sorted.count
    }

    /// Writes the index of one segment whose first records `older` indexes
    /// and whose later records this builder holds: `older`'s lines are copied
    /// as they are, and a key this builder has replaces its older entry. The
    /// cost is a copy of `older` plus this builder's records, never a re-read
    /// of the records `older` covers.
    public func writeMerged<Out: LineBuffer>(over older: IndexFile, to out: Out, created: UInt64, storedPath: (String) -> String) throws -> Int {
        let sorted = newestSorted()
        let base = UnsafeRawPointer(keys.base)
        func key(_ position: Int) -> UnsafeRawBufferPointer {
            let entry = entries[position]
            return UnsafeRawBufferPointer(start: base + entry.keyStart, count: entry.keyLength)
        }
        var replaced = 0
        var position = 0
        for n in sorted where try older.find(key(n), after: &position) != nil { replaced += 1 }
        let count = Int(older.count) + sorted.count - replaced
        try append(header(count: count, created: created, storedPath: storedPath), to: out)
        var written = 0
        var next = 0
        func emitNew(below limit: UnsafeRawBufferPointer?) throws {
            while next < sorted.count, limit.map({ compareBytes(key(sorted[next]), $0) < 0 }) ?? true {
                written += 1
                try IndexLine.write(key: key(sorted[next]), location: entries[sorted[next]].location, last: written == count, to: out)
                next += 1
            }
        }
        try older.forEachEntry { line in
            try emitNew(below: line.key)
            if next < sorted.count && compareBytes(key(sorted[next]), line.key) == 0 { return true }
            written += 1
            guard written <= count else { throw IndexError(path: older.path, reason: "more entries than its \"count\" says") }
            let p = try out.room(for: line.text.count + 2)
            p.copyMemory(from: line.text.baseAddress!, byteCount: line.text.count)
            if written < count {
                p.storeBytes(of: UInt8(ascii: ","), toByteOffset: line.text.count, as: UInt8.self)
                p.storeBytes(of: 0x0A, toByteOffset: line.text.count + 1, as: UInt8.self)
                out.commit(line.text.count + 2)
            } else {
                p.storeBytes(of: 0x0A, toByteOffset: line.text.count, as: UInt8.self)
                out.commit(line.text.count + 1)
            }
            return true
        }
        try emitNew(below: nil)
        guard written == count else { throw IndexError(path: older.path, reason: "fewer entries than its \"count\" says") }
        try append("]}\n", to: out)
        return count
    }

    private func header(count: Int, created: UInt64, storedPath: (String) -> String) -> String {
        var header = "{\"version\":\(IndexFormat.version),\"created\":\(created),\"count\":\(count),\"segments\":["
        for (n, segment) in segments.enumerated() {
            if n > 0 { header += "," }
            header += "{\"path\":" + String(decoding: JSONText.quoted(storedPath(segment.path)), as: UTF8.self)
            header += ",\"size\":\(segment.size),\"last_offset\":\(segment.lastOffset),\"last_checksum\":\"\(Hex.word(segment.lastChecksum))\"}"
        }
        return header + "],\"entries\":[\n"
    }

    private func append<Out: LineBuffer>(_ text: String, to out: Out) throws(SystemError) {
        let bytes = Array(text.utf8)
        let p = try out.room(for: bytes.count)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        out.commit(bytes.count)
    }
}

/// Scan lines that leave part of a segment out.
public struct IncompleteScan: Error {
    public let path: String
    /// Where the first missing record should start, and what starts instead.
    public let offset: UInt64
    public let found: UInt64

    public var message: String {
        let what = found > offset ? "no record at offset \(offset) (the next starts at \(found))" : "records overlap at offset \(found)"
        return "\(path): the scan lines do not cover the segment from offset 0: \(what); index a whole scan, or the segment itself"
    }
}

public enum IndexFormat {
    public static let version: UInt64 = 1
}

@inline(__always)
func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    guard let x = a.baseAddress, let y = b.baseAddress else { return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1) }
    return compareBytes(x, a.count, y, b.count)
}

/// memcmp order, shorter first on a common prefix: the order of UTF-8 bytes.
@inline(__always)
func compareBytes(_ a: UnsafeRawPointer, _ aCount: Int, _ b: UnsafeRawPointer, _ bCount: Int) -> Int {
    let n = min(aCount, bCount)
    var k = 0
    while k &+ 8 <= n {
        let x = UInt64(bigEndian: a.loadUnaligned(fromByteOffset: k, as: UInt64.self))
        let y = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: k, as: UInt64.self))
        if x != y { return x < y ? -1 : 1 }
        k &+= 8
    }
    while k < n {
        let x = a.load(fromByteOffset: k, as: UInt8.self)
        let y = b.load(fromByteOffset: k, as: UInt8.self)
        if x != y { return x < y ? -1 : 1 }
        k &+= 1
    }
    return aCount == bCount ? 0 : (aCount < bCount ? -1 : 1)
}
