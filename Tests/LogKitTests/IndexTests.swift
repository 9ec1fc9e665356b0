// The index: IndexBuilder (what it writes), IndexFile (binary search over
// the entry lines) and IndexedStore (lookups, tail catch-up, replay).

@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private let maxRecord = RecordLayout.defaultMaxRecord

private func location(_ type: RecordType = .put, segment: Int = 0, offset: UInt64, length: UInt64 = 30, timestamp: UInt64 = 1) -> IndexLocation {
    IndexLocation(type: type, segment: segment, offset: offset, length: length, timestamp: timestamp)
}

private func add(_ builder: IndexBuilder, _ key: String, _ at: IndexLocation, checksum: UInt32 = 0) {
    Array(key.utf8).withUnsafeBytes { builder.add(key: $0, at: at, checksum: checksum) }
}

/// The index text the builder writes, segment paths stored as given.
private func indexText(_ builder: IndexBuilder, created: UInt64 = 5) throws -> String {
    let out = ByteBuffer()
    _ = try builder.write(to: out, created: created, storedPath: { $0 })
    return String(decoding: out.bytes, as: UTF8.self)
}

private func find(_ index: IndexFile, _ key: String) throws -> IndexLocation? {
    try Array(key.utf8).withUnsafeBytes { try index.find($0) }
}

private func find(_ index: IndexFile, _ key: String, after position: inout Int) throws -> IndexLocation? {
    let bytes = Array(key.utf8)
    return try bytes.withUnsafeBytes { try index.find($0, after: &position) }
}

/// Builds the index of `segments` (read from the files) at `indexPath`.
@discardableResult
private func buildIndex(_ indexPath: String, segments: [String]) throws -> IndexFile {
    let builder = IndexBuilder()
    for segment in segments { try builder.addSegment(try SegmentReader(path: segment), maxRecord: maxRecord) }
    try builder.write(indexAt: indexPath)
    return try IndexFile(path: indexPath)
}

private func padded(_ n: Int) -> String {
    let digits = String(n)
    return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
}

// MARK: IndexBuilder

@Suite("IndexBuilder")
struct IndexBuilderTests {
    @Test("writes the header line, one sorted entry per line with the newest record of each key, and ]}")
    func exactText() throws {
        let builder = IndexBuilder()
        #expect(builder.segmentNumber("seg0") == 0)
        add(builder, "b", location(offset: 0, length: 30, timestamp: 1), checksum: 0x11)
        add(builder, "a", location(offset: 30, length: 30, timestamp: 2), checksum: 0x22)
        add(builder, "b", location(.delete, offset: 60, length: 29, timestamp: 3), checksum: 0xDEAD_BEEF)
        let out = ByteBuffer()
        let count = try builder.write(to: out, created: 5, storedPath: { "S/" + $0 })
        #expect(count == 2)
        #expect(String(decoding: out.bytes, as: UTF8.self) == """
            {"version":1,"created":5,"count":2,"segments":[{"path":"S/seg0","size":89,"last_offset":60,"last_checksum":"0xdeadbeef"}],"entries":[
            {"key":"a","type":"put","segment":0,"offset":30,"length":30,"timestamp":2},
            {"key":"b","type":"delete","segment":0,"offset":60,"length":29,"timestamp":3}
            ]}

            """)
    }

    @Test("an empty builder writes an empty index")
    func emptyIndex() throws {
        #expect(try indexText(IndexBuilder(), created: 0) == "{\"version\":1,\"created\":0,\"count\":0,\"segments\":[],\"entries\":[\n]}\n")
    }

    @Test("segment numbers are given in order of first appearance and reused")
    func segmentNumbers() {
        let builder = IndexBuilder()
        #expect(builder.segmentNumber("x") == 0)
        #expect(builder.segmentNumber("y") == 1)
        #expect(Array("x".utf8).withUnsafeBytes { builder.segmentNumber($0) } == 0)
        #expect(Array("y".utf8).withUnsafeBytes { builder.segmentNumber($0) } == 1)
        #expect(Array("z".utf8).withUnsafeBytes { builder.segmentNumber($0) } == 2)
        #expect(builder.segmentNumber("y") == 1)
        #expect(builder.segments.map(\.path) == ["x", "y", "z"])
    }

    @Test("the newest record of a key wins by position, whatever order the lines came in")
    func newestByPosition() throws {
        let builder = IndexBuilder()
        _ = builder.segmentNumber("s0")
        _ = builder.segmentNumber("s1")
        add(builder, "k", location(offset: 100))
        add(builder, "k", location(offset: 0))          // older: lower offset in the same segment
        add(builder, "m", location(segment: 1, offset: 0))
        add(builder, "m", location(segment: 0, offset: 500))  // older: an earlier segment
        let text = try indexText(builder)
        #expect(text.contains("{\"key\":\"k\",\"type\":\"put\",\"segment\":0,\"offset\":100,"))
        #expect(text.contains("{\"key\":\"m\",\"type\":\"put\",\"segment\":1,\"offset\":0,"))
        #expect(text.contains("\"count\":2,"))
    }

    @Test("entries are sorted by the keys' UTF-8 bytes")
    func utf8Order() throws {
        let keys = ["é", "b", "Z", "aa", "a", "\u{FF61}", "😀", "a\u{0}", "A"]
        let builder = IndexBuilder()
        _ = builder.segmentNumber("s")
        for (n, key) in keys.enumerated() { add(builder, key, location(offset: UInt64(n) * 100, length: 100)) }
        let text = try indexText(builder)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().dropLast(2)
        let parser = IndexLineParser()
        let order = try lines.map { line in
            try Array(line.utf8).withUnsafeBytes { String(decoding: try parser.key(of: $0), as: UTF8.self) }
        }
        #expect(order == ["A", "Z", "a", "a\u{0}", "aa", "b", "é", "\u{FF61}", "😀"])
        #expect(order == keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    @Test("each segment's size, last offset and checksum are those of the record ending last")
    func segmentSummary() throws {
        let builder = IndexBuilder()
        _ = builder.segmentNumber("s")
        add(builder, "b", location(offset: 40, length: 35), checksum: 2)
        add(builder, "a", location(offset: 0, length: 40), checksum: 1)
        #expect(builder.segments == [IndexedSegment(path: "s", size: 75, lastChecksum: 2, lastOffset: 40)])
    }

    private func scanLines(_ lines: [(offset: Int, length: Int, key: String)]) -> [UInt8] {
        utf8(lines.map {
            "{\"segment\":\"s.seg\",\"offset\":\($0.offset),\"length\":\($0.length),\"type\":\"put\",\"key\":\"\($0.key)\",\"timestamp\":1,\"checksum\":\"0x0000000\($0.offset % 10)\"}"
        }.joined(separator: "\n") + "\n")
    }

    private func addScanLines(_ bytes: [UInt8]) throws -> IndexBuilder {
        let builder = IndexBuilder()
        let file = try TempFile(bytes)
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        try builder.addScanLines(from: fd, maxRecord: maxRecord)
        return builder
    }

    @Test("scan lines covering the segment are accepted, in order or not")
    func scanLinesCovering() throws {
        let inOrder = try addScanLines(scanLines([(0, 30, "a"), (30, 30, "b"), (60, 30, "c")]))
        #expect(inOrder.segments == [IndexedSegment(path: "s.seg", size: 90, lastChecksum: 0, lastOffset: 60)])
        let shuffled = try addScanLines(scanLines([(30, 30, "b"), (60, 30, "c"), (0, 30, "a")]))
        #expect(shuffled.segments.first?.size == 90)
        #expect(try indexText(shuffled).contains("{\"key\":\"a\",\"type\":\"put\",\"segment\":0,\"offset\":0,\"length\":30,\"timestamp\":1},"))
    }

    @Test("scan lines with a gap are refused: IncompleteScan says where")
    func scanLinesGap() throws {
        do {
            _ = try addScanLines(scanLines([(0, 30, "a"), (60, 30, "c")]))
            Issue.record("a gap was accepted")
        } catch let gap as IncompleteScan {
            #expect(gap.path == "s.seg")
            #expect(gap.offset == 30)
            #expect(gap.found == 60)
            #expect(gap.message.contains("no record at offset 30 (the next starts at 60)"))
        }
        do {
            _ = try addScanLines(scanLines([(30, 30, "b"), (60, 30, "c")]))
            Issue.record("lines not starting at 0 were accepted")
        } catch let gap as IncompleteScan {
            #expect(gap.offset == 0)
            #expect(gap.found == 30)
        }
    }

    @Test("overlapping scan lines are refused")
    func scanLinesOverlap() throws {
        do {
            _ = try addScanLines(scanLines([(0, 30, "a"), (20, 30, "b")]))
            Issue.record("an overlap was accepted")
        } catch let gap as IncompleteScan {
            #expect(gap.offset == 30)
            #expect(gap.found == 20)
            #expect(gap.message.contains("records overlap at offset 20"))
        }
    }

    @Test("a scan line without an address field names the field and the line")
    func scanLineMissingField() throws {
        let lines = scanLines([(0, 30, "a")]) + utf8("{\"segment\":\"s.seg\",\"offset\":30,\"type\":\"put\",\"key\":\"b\",\"timestamp\":1,\"checksum\":\"0x00000000\"}\n")
        do {
            _ = try addScanLines(lines)
            Issue.record("a line without length was accepted")
        } catch let error as InputLineError {
            #expect(error.line == 2)
            #expect(error.reason.contains("missing \"length\""))
        }
    }

    @Test("write(indexAt:) stores segment paths relative to the index's directory, and IndexFile resolves them")
    func relativePaths() throws {
        let dir = try ScratchDirectory()
        #expect(mkdir(dir.file("data"), 0o755) == 0)
        #expect(mkdir(dir.file("idx"), 0o755) == 0)
        var image = SegmentImage()
        image.put("a", "1")
        let segment = try dir.write("data/seg", image.bytes)
        let index = try buildIndex(dir.file("idx/index.json"), segments: [segment])
        let text = String(decoding: try readFile(dir.file("idx/index.json")), as: UTF8.self)
        #expect(text.contains("\"path\":\"../data/seg\""))
        #expect(index.segments.map(\.path) == [dir.file("idx/../data/seg")])
        #expect(try FileSystem.identity(of: index.segments[0].path) == (try FileSystem.identity(of: segment)))
        let beside = try buildIndex(dir.file("data/index.json"), segments: [segment])
        #expect(String(decoding: try readFile(dir.file("data/index.json")), as: UTF8.self).contains("\"path\":\"seg\""))
        #expect(beside.segments.map(\.path) == [dir.file("data/seg")])
    }

    @Test("rebuild re-reads the listed segments and adds a new one last")
    func rebuild() throws {
        let dir = try ScratchDirectory()
        var one = SegmentImage()
        one.put("a", "1")
        one.put("b", "2")
        var two = SegmentImage()
        two.put("a", "3")
        let s1 = try dir.write("one.seg", one.bytes)
        let s2 = try dir.write("two.seg", two.bytes)
        let indexPath = dir.file("index.json")
        try buildIndex(indexPath, segments: [s1])
        try IndexBuilder.rebuild(indexPath, including: s2, maxRecord: maxRecord)
        let index = try IndexFile(path: indexPath)
        #expect(index.segments.map(\.path) == [s1, s2])
        #expect(try find(index, "a") == location(segment: 1, offset: 0))
        #expect(try find(index, "b") == location(segment: 0, offset: 30))
        // Including a segment already listed adds nothing.
        try IndexBuilder.rebuild(indexPath, including: s1, maxRecord: maxRecord)
        #expect(try IndexFile(path: indexPath).segments.count == 2)
    }
}

// MARK: IndexFile

@Suite("IndexFile")
struct IndexFileTests {
    /// An index of 1000 keys `key-00000`, `key-00002`, ... `key-01998` at
    /// offsets 100 * n, written by IndexBuilder.
    private func evenKeys(_ dir: ScratchDirectory) throws -> IndexFile {
        let builder = IndexBuilder()
        _ = builder.segmentNumber(dir.file("seg"))
        for n in stride(from: 0, to: 2000, by: 2) {
            add(builder, "key-" + padded(n), location(offset: UInt64(n) * 100, length: 100, timestamp: UInt64(n)))
        }
        try builder.write(indexAt: dir.file("index.json"))
        return try IndexFile(path: dir.file("index.json"))
    }

    @Test("the header: count, created and the segments, resolved against the index's directory")
    func header() throws {
        let dir = try ScratchDirectory()
        let index = try evenKeys(dir)
        #expect(index.count == 1000)
        #expect(index.created > 1_600_000_000_000)
        #expect(index.segments == [IndexedSegment(path: dir.file("seg"), size: 199_900, lastChecksum: 0, lastOffset: 199_800)])
    }

    @Test("every key is found, the first and the last included")
    func everyKey() throws {
        let dir = try ScratchDirectory()
        let index = try evenKeys(dir)
        #expect(try find(index, "key-00000") == location(offset: 0, length: 100, timestamp: 0))
        #expect(try find(index, "key-01998") == location(offset: 199_800, length: 100, timestamp: 1998))
        for n in stride(from: 0, to: 2000, by: 2) {
            #expect(try find(index, "key-" + padded(n))?.offset == UInt64(n) * 100, "key-\(padded(n))")
        }
    }

    @Test("absent keys: before the first, between entries, after the last, prefixes and extensions", arguments: [
        "", "a", "key-", "key-0000", "KEY-00000", "key-00000\u{0}", "key-000000", "key-00001", "key-00999", "key-01001",
        "key-01997", "key-01999", "key-019980", "key-1", "key-99999", "zzz", "\u{10FFFF}",
    ])
    func absentKeys(key: String) throws {
        let dir = try ScratchDirectory()
        let index = try evenKeys(dir)
        #expect(try find(index, key) == nil)
    }

    @Test("find(after:) in ascending order answers as find() does, present and absent keys mixed")
    func gallopingMatchesFind() throws {
        let dir = try ScratchDirectory()
        let index = try evenKeys(dir)
        var queries = ["a", "key-", "zzz", "key-01999", "key-019980"]
        for n in stride(from: 0, to: 2000, by: 7) { queries.append("key-" + padded(n)) }
        for n in [0, 1, 2, 3, 500, 998, 1996, 1998] { queries.append("key-" + padded(n)) }
        queries.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var position = 0
        var found = 0
        for key in queries {
            let galloped = try find(index, key, after: &position)
            #expect(galloped == (try find(index, key)), "\(key)")
            if galloped != nil { found += 1 }
        }
        #expect(found == queries.filter { key in
            guard key.hasPrefix("key-"), key.count == 9, let n = Int(key.dropFirst(4)) else { return false }
            return n % 2 == 0 && n < 2000
        }.count)
        #expect(found > 100)
    }

    @Test("keys that need escaping in JSON are found by their bytes")
    func escapedKeys() throws {
        let dir = try ScratchDirectory()
        let keys = ["quote\"d", "back\\slash", "new\nline", "tab\t", "ctl\u{1}x", "é", "😀", "slash/", "plain", "\u{7F}del", "a\"", "a"]
        let builder = IndexBuilder()
        _ = builder.segmentNumber(dir.file("seg"))
        for (n, key) in keys.enumerated() { add(builder, key, location(offset: UInt64(n) * 50, length: 50)) }
        try builder.write(indexAt: dir.file("index.json"))
        let index = try IndexFile(path: dir.file("index.json"))
        for (n, key) in keys.enumerated() {
            #expect(try find(index, key)?.offset == UInt64(n) * 50, "\(key)")
        }
        for absent in ["quote", "new", "a\"b", "back\\", "ctl\u{1}", "tab"] {
            #expect(try find(index, absent) == nil, "\(absent)")
        }
    }

    @Test("duplicate keys given to the builder resolve to the newest in the file")
    func duplicatesResolved() throws {
        let dir = try ScratchDirectory()
        let builder = IndexBuilder()
        _ = builder.segmentNumber(dir.file("seg"))
        add(builder, "dup", location(offset: 0))
        add(builder, "other", location(offset: 30))
        add(builder, "dup", location(.delete, offset: 90, length: 31))
        add(builder, "dup", location(offset: 60))  // arrives last but is older than offset 90
        try builder.write(indexAt: dir.file("index.json"))
        let index = try IndexFile(path: dir.file("index.json"))
        #expect(index.count == 2)
        #expect(try find(index, "dup") == location(.delete, offset: 90, length: 31))
        var position = 0
        #expect(try find(index, "dup", after: &position) == location(.delete, offset: 90, length: 31))
    }

    @Test("an index with one entry")
    func oneEntry() throws {
        let dir = try ScratchDirectory()
        let builder = IndexBuilder()
        _ = builder.segmentNumber(dir.file("seg"))
        add(builder, "only", location(offset: 0, length: 33))
        try builder.write(indexAt: dir.file("index.json"))
        let index = try IndexFile(path: dir.file("index.json"))
        #expect(index.count == 1)
        #expect(try find(index, "only") == location(offset: 0, length: 33))
        for absent in ["", "a", "onl", "only\u{0}", "onlz", "z"] {
            #expect(try find(index, absent) == nil, "\(absent)")
        }
        var position = 0
        #expect(try find(index, "a", after: &position) == nil)
        #expect(try find(index, "only", after: &position) == location(offset: 0, length: 33))
        #expect(try find(index, "z", after: &position) == nil)
    }

    @Test("an empty index finds nothing")
    func emptyIndex() throws {
        let dir = try ScratchDirectory()
        try IndexBuilder().write(indexAt: dir.file("index.json"))
        let index = try IndexFile(path: dir.file("index.json"))
        #expect(index.count == 0)
        #expect(index.segments.isEmpty)
        #expect(try find(index, "anything") == nil)
        var position = 0
        #expect(try find(index, "anything", after: &position) == nil)
    }

    @Test("an index file without its final newline is still read")
    func noFinalNewline() throws {
        let dir = try ScratchDirectory()
        try dir.write("index.json", utf8("""
            {"version":1,"created":1,"count":1,"segments":[{"path":"seg","size":30,"last_checksum":"0x00000001","last_offset":0}],"entries":[
            {"key":"k","type":"put","segment":0,"offset":0,"length":30,"timestamp":1}
            ]}
            """))
        let index = try IndexFile(path: dir.file("index.json"))
        #expect(try find(index, "k") == location(offset: 0, length: 30, timestamp: 1))
        #expect(index.segments.first?.path == dir.file("seg"))
        #expect(index.segments.first?.lastChecksum == 1)
    }

    @Test("files that are not an index are refused with the reason", arguments: [
        ("", "not an index: no header line"),
        ("{\"version\":1}", "not an index: no header line"),
        ("{\"version\":1}\n]}\n", "not an index: line 1 does not end with \"entries\":["),
        ("{\"version\":2,\"created\":0,\"count\":0,\"segments\":[],\"entries\":[\n]}\n", "unsupported index version 2"),
        ("{\"created\":0,\"count\":0,\"segments\":[],\"entries\":[\n]}\n", "not an index: no \"version\""),
        ("{\"version\":1,\"created\":0,\"count\":1,\"segments\":[],\"entries\":[\n{\"key\":\"a\",\"type\":\"put\",\"segment\":0,\"offset\":0,\"length\":30,\"timestamp\":1},\n",
         "truncated index: the last line is not ]}"),
        ("{\"version\":1,\"created\":0,\"count\":0,\"segments\":[{\"path\":\"seg\",\"size\":1}],\"entries\":[\n]}\n",
         "segment 0 in the header lacks path, size, last_checksum or last_offset"),
    ])
    func notAnIndex(text: String, reason: String) throws {
        let dir = try ScratchDirectory()
        try dir.write("index.json", utf8(text))
        do {
            _ = try IndexFile(path: dir.file("index.json"))
            Issue.record("read as an index")
        } catch let error as IndexError {
            #expect(error.reason == reason)
            #expect(error.message == dir.file("index.json") + ": " + reason)
        }
    }

    @Test("a directory or a missing file is a SystemError")
    func notAFile() throws {
        let dir = try ScratchDirectory()
        do {
            _ = try IndexFile(path: dir.path)
            Issue.record("read a directory")
        } catch let error as SystemError {
            #expect(error.errno == EISDIR)
        }
        do {
            _ = try IndexFile(path: dir.file("missing"))
            Issue.record("read a missing file")
        } catch let error as SystemError {
            #expect(error.errno == ENOENT)
        }
    }

    @Test("an entry naming a segment the header lacks is an IndexError when it is found")
    func entrySegmentOutOfRange() throws {
        let dir = try ScratchDirectory()
        try dir.write("index.json", utf8("""
            {"version":1,"created":1,"count":1,"segments":[],"entries":[
            {"key":"k","type":"put","segment":3,"offset":0,"length":30,"timestamp":1}
            ]}

            """))
        let index = try IndexFile(path: dir.file("index.json"))
        do {
            _ = try find(index, "k")
            Issue.record("found an entry in a segment that does not exist")
        } catch let error as IndexError {
            #expect(error.reason.contains("segment 3 is not in the header"))
        }
        #expect(try find(index, "j") == nil)
    }
}

// MARK: IndexedStore

private enum Answer: Equatable, CustomStringConvertible {
    case found(String, segment: String, offset: UInt64)
    case deleted(segment: String, offset: UInt64)
    case missing

    init(_ result: LookupResult) {
        switch result {
        case .found(let record, let segment, let offset): self = .found(String(decoding: record.value, as: UTF8.self), segment: segment, offset: offset)
        case .deleted(_, let segment, let offset): self = .deleted(segment: segment, offset: offset)
        case .missing: self = .missing
        }
    }

    var description: String {
        switch self {
        case .found(let value, let segment, let offset): return "found \(value) at \(segment):\(offset)"
        case .deleted(let segment, let offset): return "deleted at \(segment):\(offset)"
        case .missing: return "missing"
        }
    }
}

private func lookup(_ store: IndexedStore, _ key: String) throws -> Answer {
    try Array(key.utf8).withUnsafeBytes { Answer(try store.lookup($0)) }
}

@Suite("IndexedStore")
struct IndexedStoreTests {
    /// a=1 (overwritten), b=2, c=3, b deleted, a=4.
    private func base(_ dir: ScratchDirectory) throws -> (path: String, image: SegmentImage) {
        var image = SegmentImage()
        image.put("a", "1", 1)
        image.put("b", "2", 2)
        image.put("c", "3", 3)
        image.delete("b", 4)
        image.put("a", "4", 5)
        return (try dir.write("seg", image.bytes), image)
    }

    private func open(_ dir: ScratchDirectory, warnings: MessageLog = MessageLog()) throws -> IndexedStore {
        try IndexedStore(indexPath: dir.file("index.json"), maxRecord: maxRecord, warn: { warnings($0) })
    }

    @Test("a current index: found, deleted and missing, read from the segment")
    func persisted() throws {
        let dir = try ScratchDirectory()
        let (path, image) = try base(dir)
        try buildIndex(dir.file("index.json"), segments: [path])
        let warnings = MessageLog()
        let store = try open(dir, warnings: warnings)
        #expect(store.mode == .persisted)
        #expect(store.entryCount == 3)
        #expect(store.segmentBytes == image.size)
        #expect(try lookup(store, "a") == .found("4", segment: path, offset: image.offsets[4]))
        #expect(try lookup(store, "c") == .found("3", segment: path, offset: image.offsets[2]))
        #expect(try lookup(store, "b") == .deleted(segment: path, offset: image.offsets[3]))
        #expect(try lookup(store, "d") == .missing)
        #expect(try lookup(store, "") == .missing)
        #expect(warnings.messages.isEmpty)
    }

    @Test("a segment that grew: the tail is applied on top of the index")
    func tailCatchUp() throws {
        let dir = try ScratchDirectory()
        let (path, image) = try base(dir)
        try buildIndex(dir.file("index.json"), segments: [path])
        var tail = SegmentImage()
        tail.put("d", "5", 6)
        tail.put("a", "6", 7)
        tail.delete("c", 8)
        tail.put("b", "7", 9)
        try appendFile(path, tail.bytes)
        let warnings = MessageLog()
        let store = try open(dir, warnings: warnings)
        #expect(store.mode == .persistedWithTail)
        #expect(try lookup(store, "a") == .found("6", segment: path, offset: image.size + tail.offsets[1]))
        #expect(try lookup(store, "b") == .found("7", segment: path, offset: image.size + tail.offsets[3]))
        #expect(try lookup(store, "c") == .deleted(segment: path, offset: image.size + tail.offsets[2]))
        #expect(try lookup(store, "d") == .found("5", segment: path, offset: image.size))
        #expect(try lookup(store, "e") == .missing)
        #expect(warnings.messages.isEmpty)
    }

    @Test("a record still being appended at the end of the tail is not seen; the ones before it are")
    func tailWithIncompleteRecord() throws {
        let dir = try ScratchDirectory()
        let (path, image) = try base(dir)
        try buildIndex(dir.file("index.json"), segments: [path])
        try appendFile(path, Reference.put("d", "5", 6) + Reference.put("a", "in flight", 7).prefix(33))
        let store = try open(dir)
        #expect(store.mode == .persistedWithTail)
        #expect(try lookup(store, "d") == .found("5", segment: path, offset: image.size))
        #expect(try lookup(store, "a") == .found("4", segment: path, offset: image.offsets[4]))
    }

    @Test("a segment replaced by another (same size, larger, smaller) is replayed in full, with a warning", arguments: [0, 1, 2])
    func replayWhenReplaced(variant: Int) throws {
        let dir = try ScratchDirectory()
        let (path, _) = try base(dir)
        try buildIndex(dir.file("index.json"), segments: [path])
        var replacement = SegmentImage()
        switch variant {
        case 0:  // the same size, different records
            replacement.put("x", "1", 1)
            replacement.put("b", "8", 2)
            replacement.put("y", "3", 3)
            replacement.delete("x", 4)
            replacement.put("a", "9", 5)
        case 1:  // larger
            for n in 0..<10 { replacement.put("k\(n)", "value \(n)", UInt64(n)) }
            replacement.put("a", "9", 20)
        default:  // smaller
            replacement.put("a", "9", 1)
        }
        let other = try dir.write("replacement", replacement.bytes)
        #expect(rename(other, path) == 0)
        let warnings = MessageLog()
        let store = try open(dir, warnings: warnings)
        #expect(store.mode == .replay)
        #expect(warnings.messages.count == 1)
        #expect(warnings.messages.first?.hasPrefix("\(path): ") == true)
        #expect(warnings.messages.first?.hasSuffix("; replaying the segments in full") == true)
        if variant == 2 { #expect(warnings.messages.first?.contains("smaller than indexed") == true) }
        let lastA = replacement.offsets.last!
        #expect(try lookup(store, "a") == .found("9", segment: path, offset: lastA))
        #expect(try lookup(store, "c") == .missing, "c was only in the old segment")
        if variant == 0 {
            #expect(try lookup(store, "b") == .found("8", segment: path, offset: replacement.offsets[1]))
            #expect(try lookup(store, "x") == .deleted(segment: path, offset: replacement.offsets[3]))
            #expect(store.entryCount == 4)
        }
    }

    @Test("a later segment's record is newer than any in an earlier one, tail included")
    func segmentOrder() throws {
        let dir = try ScratchDirectory()
        var zero = SegmentImage()
        zero.put("k", "old", 1)
        zero.put("only0", "x", 2)
        var one = SegmentImage()
        one.put("k", "new", 3)
        let s0 = try dir.write("s0", zero.bytes)
        let s1 = try dir.write("s1", one.bytes)
        try buildIndex(dir.file("index.json"), segments: [s0, s1])
        #expect(try lookup(try open(dir), "k") == .found("new", segment: s1, offset: 0))
        // Appending to the earlier segment does not make its record newer than the later segment's.
        try appendFile(s0, Reference.put("k", "tail0", 4) + Reference.put("only0", "y", 5))
        let store = try open(dir)
        #expect(store.mode == .persistedWithTail)
        #expect(try lookup(store, "k") == .found("new", segment: s1, offset: 0))
        let tail0 = Reference.put("k", "tail0", 4)
        #expect(try lookup(store, "only0") == .found("y", segment: s0, offset: zero.size + UInt64(tail0.count)))
        // A tail of the last segment wins over everything.
        try appendFile(s1, Reference.delete("k", 6))
        #expect(try lookup(try open(dir), "k") == .deleted(segment: s1, offset: one.size))
    }

    @Test("many keys at once are answered in the order asked")
    func batchLookup() throws {
        let dir = try ScratchDirectory()
        let (path, image) = try base(dir)
        try buildIndex(dir.file("index.json"), segments: [path])
        try appendFile(path, Reference.put("e", "tail", 9))
        let store = try open(dir)
        let keys = ["zz", "c", "a", "b", "e", "a", "0"].map { Array($0.utf8) }
        var answers: [String] = []
        try withBuffers(keys) { buffers in
            try store.lookup(buffers) { key, result in
                answers.append(String(decoding: key, as: UTF8.self) + ": " + Answer(result).description)
            }
        }
        #expect(answers == [
            "zz: missing",
            "c: found 3 at \(path):\(image.offsets[2])",
            "a: found 4 at \(path):\(image.offsets[4])",
            "b: deleted at \(path):\(image.offsets[3])",
            "e: found tail at \(path):\(image.size)",
            "a: found 4 at \(path):\(image.offsets[4])",
            "0: missing",
        ])
    }

    @Test("an entry that points at another record is an IndexError, never that record's value")
    func entryPointsElsewhere() throws {
        let dir = try ScratchDirectory()
        var image = SegmentImage()
        image.put("a", "1", 1)
        image.put("b", "2", 2)
        let path = try dir.write("seg", image.bytes)
        try buildIndex(dir.file("index.json"), segments: [path])
        let text = String(decoding: try readFile(dir.file("index.json")), as: UTF8.self)
        let original = "{\"key\":\"a\",\"type\":\"put\",\"segment\":0,\"offset\":0,"
        #expect(text.contains(original))
        let edited = text.replacing(original, with: "{\"key\":\"a\",\"type\":\"put\",\"segment\":0,\"offset\":30,")
        try writeFile(dir.file("index.json"), utf8(edited))
        let store = try open(dir)
        #expect(store.mode == .persisted)
        do {
            _ = try lookup(store, "a")
            Issue.record("answered from another key's record")
        } catch let error as IndexError {
            #expect(error.reason.contains("holds another record"))
        }
        #expect(try lookup(store, "b") == .found("2", segment: path, offset: 30))
    }
}

/// Lends `keys` to `body` as raw buffers that stay valid for the whole call.
private func withBuffers<T>(_ keys: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> T) rethrows -> T {
    let storage = keys.map { key -> UnsafeMutableRawBufferPointer in
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(key.count, 1), alignment: 1)
        p.copyBytes(from: key)
        return p
    }
    defer { storage.forEach { $0.deallocate() } }
    return try body(zip(storage, keys).map { UnsafeRawBufferPointer(start: $0.0.baseAddress, count: $0.1.count) })
}

// MARK: Randomised checks against simple models

@Suite("Index models")
struct IndexModelTests {
    @Test("IndexFile finds exactly the keys it holds, for random keys of any characters", arguments: [UInt64(11), 12, 13])
    func randomKeys(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var keys = Set<[UInt8]>()
        while keys.count < 400 { keys.insert(Array(rng.string(maxScalars: 12, minScalars: 1).utf8)) }
        let dir = try ScratchDirectory()
        let builder = IndexBuilder()
        _ = builder.segmentNumber(dir.file("seg"))
        var expected: [[UInt8]: UInt64] = [:]
        for (n, key) in keys.enumerated() {
            expected[key] = UInt64(n) * 64
            key.withUnsafeBytes { builder.add(key: $0, at: location(offset: UInt64(n) * 64, length: 64), checksum: 0) }
        }
        try builder.write(indexAt: dir.file("index.json"))
        let index = try IndexFile(path: dir.file("index.json"))
        #expect(index.count == 400)
        for (key, offset) in expected {
            #expect(try key.withUnsafeBytes { try index.find($0) }?.offset == offset, "\(hexString(key))")
        }
        var probes: [[UInt8]] = []
        while probes.count < 400 {
            let probe = Array(rng.string(maxScalars: 12, minScalars: 1).utf8)
            if !keys.contains(probe) { probes.append(probe) }
        }
        for key in keys.prefix(100) { probes.append(key + [0]); probes.append(Array(key.dropLast())) }
        for probe in probes where !keys.contains(probe) {
            #expect(try probe.withUnsafeBytes { try index.find($0) } == nil, "\(hexString(probe))")
        }
        // The galloping search over everything, in byte order, agrees.
        let all = (Array(keys) + probes).sorted { $0.lexicographicallyPrecedes($1) }
        var position = 0
        for key in all {
            let galloped = try key.withUnsafeBytes { try index.find($0, after: &position) }
            #expect(galloped?.offset == expected[key], "\(hexString(key))")
        }
    }

    @Test("IndexedStore answers as a model of the segments does, with the index built at any point, in every mode")
    func randomHistories() throws {
        var modes = Set<String>()
        for seed in UInt64(100)..<UInt64(140) {
            modes.insert(try randomHistory(seed: seed).rawValue)
        }
        #expect(modes == ["persisted", "persisted+tail", "replay"], "the seeds exercise every mode")
    }

    private func randomHistory(seed: UInt64) throws -> LookupMode {
        var rng = SplitMix64(seed: seed)
        let dir = try ScratchDirectory()
        let segmentCount = rng.int(1...3)
        var images: [SegmentImage] = []
        var indexedSizes: [Int] = []
        for _ in 0..<segmentCount {
            var image = SegmentImage()
            for n in 0..<rng.int(0...60) {
                let key = "k\(rng.int(0...25))"
                if rng.int(0...3) == 0 { image.delete(key, UInt64(n)) } else { image.put(key, "v\(rng.next() % 1000)", UInt64(n)) }
            }
            images.append(image)
            indexedSizes.append(rng.int(0...image.records.count))
        }
        // Index a prefix of each segment, then let the rest arrive.
        var paths: [String] = []
        for (n, image) in images.enumerated() {
            paths.append(try dir.write("s\(n)", image.records.prefix(indexedSizes[n]).flatMap { $0 }))
        }
        try buildIndex(dir.file("index.json"), segments: paths)
        for (n, image) in images.enumerated() { try writeFile(paths[n], image.bytes) }
        // Sometimes a segment is replaced by one with other records.
        let replaced = rng.int(0...3) == 0 ? rng.int(0...(segmentCount - 1)) : nil
        if let replaced {
            var other = SegmentImage()
            for n in 0..<rng.int(1...30) { other.put("k\(rng.int(0...25))", "r\(n)", UInt64(n)) }
            images[replaced] = other
            let temporary = try dir.write("replacement", other.bytes)
            #expect(rename(temporary, paths[replaced]) == 0)
        }
        // The model: the last record of each key, later segments newer.
        var model: [String: Answer] = [:]
        for (n, image) in images.enumerated() {
            for (offset, record) in zip(image.offsets, image.records) {
                let keyLength = Int(record[11])
                let key = String(decoding: record[28..<(28 + keyLength)], as: UTF8.self)
                model[key] = record[5] == 1
                    ? .found(String(decoding: record[(28 + keyLength)...], as: UTF8.self), segment: paths[n], offset: offset)
                    : .deleted(segment: paths[n], offset: offset)
            }
        }
        let warnings = MessageLog()
        let store = try IndexedStore(indexPath: dir.file("index.json"), maxRecord: maxRecord, warn: { warnings($0) })
        let grew = zip(images, indexedSizes).contains { $0.records.count > $1 }
        if store.mode == .replay {
            #expect(replaced != nil, "seed \(seed): replayed, but no segment was replaced")
            #expect(warnings.messages.count == 1)
        } else if replaced == nil {
            #expect(store.mode == (grew ? .persistedWithTail : .persisted), "seed \(seed)")
            #expect(warnings.messages.isEmpty)
        }
        let keys = (0...26).map { "k\($0)" }
        for key in keys {
            #expect(try lookup(store, key) == (model[key] ?? .missing), "seed \(seed) key \(key) mode \(store.mode)")
        }
        var batch: [String] = []
        try withBuffers(keys.reversed().map { Array($0.utf8) }) { buffers in
            try store.lookup(buffers) { _, result in batch.append(Answer(result).description) }
        }
        #expect(batch == keys.reversed().map { (model[$0] ?? .missing).description })
        return store.mode
    }
}
