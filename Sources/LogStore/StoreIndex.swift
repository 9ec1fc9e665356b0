// The store's index (docs/index.md, "The store's index"): a run per segment,
// `index-N.json`, each an index in the single-file format of contract
// section 4 covering that one segment, and `index.json`, a one-line
// manifest naming the runs and what each covers:
//
//   {"version":1,"store":true,"created":MS,"count":N,"segments":[{"path":"segment-0001.dat",
//    "size":N,"last_offset":N,"last_checksum":"0x...","index":"index-0001.json","count":N,
//    "first_key":"...","last_key":"..."},...]}
//
// A closed segment never changes, so its run is written once. Bringing the
// index up to date reads only records no run covers: segments without a
// run, and the active segment from where its run ends, whose run is then
// rewritten by merging its lines with the new entries (a copy bounded by
// the segment size, never a re-read of the store). A run that no longer
// matches its segment (a merge replaced it) is built again from that one
// segment. Every run is checked against its segment before use with one
// positioned read, so a stale run is never trusted, only rebuilt.
//
// A lookup reads the manifest and walks the segments newest first: the
// records after the end of a segment's run (the writes since the last
// update), then a binary search of the run, opened only if the key lies
// between the run's first and last keys. The first segment that knows the
// key answers, and segments older than it are never opened. Keys written in
// order (ids, timestamps) fall in one run's range, so most lookups open one
// run whatever the number of segments.

import LogFormat
import LogIO
import LogJSON

import Glibc

/// What an index update did.
public struct StoreIndexUpdate: Sendable {
    public var reused = 0
    public var extended = 0
    public var built = 0
    public var removed = 0
    /// Records read from the segments.
    public var records = 0
    public var entries: UInt64 = 0
}

/// A segment of the store, and what the manifest says its run covers if
/// that still matches the segment.
struct IndexedStoreSegment {
    let number: UInt64
    let reader: SegmentReader
    /// Where the run's records end: the start of the unindexed tail.
    let covered: UInt64
    /// The run's path and key range, and what it must say it covers, if the
    /// run is to be used.
    let run: (path: String, first: [UInt8], last: [UInt8], covers: IndexedSegment)?

    func mayHold(_ key: UnsafeRawBufferPointer) -> Bool {
        guard let run else { return false }
        return run.first.withUnsafeBytes { compareBytes($0, key) <= 0 } && run.last.withUnsafeBytes { compareBytes(key, $0) <= 0 }
    }

    func mayHold(_ range: KeyRange) -> Bool {
        guard let run else { return false }
        return range.overlaps(first: run.first, last: run.last)
    }
}

/// One segment's line of the manifest.
struct ManifestEntry {
    let segment: IndexedSegment
    /// The segment file's device and inode: a merge renames another file
    /// over the name, which one record's checksum alone might not reveal.
    let identity: FileIdentity?
    let index: String
    let count: UInt64
    let first: [UInt8]
    let last: [UInt8]
}

public enum StoreIndex {
    /// True if the file at `path` is a store's manifest rather than a
    /// single-file index: `logidx get DIR/index.json KEY` means the store.
    public static func isManifest(_ path: String) -> Bool {
        guard let file = try? FileDescriptor.open(path, O_RDONLY | O_NONBLOCK) else { return false }
        defer { file.close() }
        var head = [UInt8](repeating: 0, count: 64)
        let count = head.withUnsafeMutableBytes { (try? file.read(at: 0, into: $0)) ?? 0 }
        return String(decoding: head[0..<count], as: UTF8.self).hasPrefix("{\"version\":1,\"store\":true,")
    }

    /// The run of `segment` if it exists, reads as an index of that one
    /// segment and still matches it; `warn` hears why a run is not used.
    static func matchingRun(_ store: Store, _ number: UInt64, _ reader: SegmentReader, maxRecord: Int, warn: (String) -> Void) throws -> IndexFile? {
        let path = store.path(of: Store.runName(number))
        guard FileSystem.exists(path) else { return nil }
        let run: IndexFile
        do {
            run = try IndexFile(path: path)
        } catch let error as IndexError {
            warn("\(error.message); not using it")
            return nil
        }
        guard run.segments.count == 1, let indexed = run.segments.first,
              try FileSystem.identity(of: indexed.path) == reader.identity
        else {
            warn("\(path): not the index of \(reader.path); not using it")
            return nil
        }
        if let reason = try indexed.mismatch(reader.file, size: reader.size, maxRecord: maxRecord, buffer: ByteBuffer()) {
            warn("\(reader.path): \(reason); its index \(Store.runName(number)) is stale")
            return nil
        }
        return run
    }

    /// Brings the index of `store` up to date: see the file comment.
    public static func update(_ store: Store, maxRecord: Int, warn: (String) -> Void) throws -> StoreIndexUpdate {
        var report = StoreIndexUpdate()
        let segments = try store.segments()
        let readers = try store.openSegments()
        var manifest: [String] = []
        var kept: Set<String> = []
        for reader in readers {
            let name = FileSystem.name(of: reader.path)
            guard let number = Store.segmentNumber(name) else { continue }
            let runName = Store.runName(number)
            let runPath = store.path(of: runName)
            kept.insert(runName)
            // A stale run is replaced quietly: that is what an update is for.
            var run = try matchingRun(store, number, reader, maxRecord: maxRecord) { _ in }
            if let existing = run, existing.segments[0].size < reader.size {
                let tail = IndexBuilder()
                let added = try tail.addCommitted(reader, from: existing.segments[0].size, maxRecord: maxRecord)
                if added > 0 {
                    try tail.write(indexAt: runPath, mergingOver: existing)
                    report.extended += 1
                    report.records += added
                    run = try IndexFile(path: runPath)
                } else {
                    report.reused += 1
                }
            } else if run != nil {
                report.reused += 1
            } else {
                let builder = IndexBuilder()
                report.records += try builder.addCommitted(reader, from: 0, maxRecord: maxRecord)
                try builder.write(indexAt: runPath)
                report.built += 1
                run = try IndexFile(path: runPath)
            }
            guard let run, let covered = run.segments.first else { continue }
            report.entries += run.count
            func quoted(_ text: String) -> String { String(decoding: JSONText.quoted(text), as: UTF8.self) }
            let identity = reader.identity
            var line = "{\"path\":\(quoted(name)),\"size\":\(covered.size),\"last_offset\":\(covered.lastOffset),\"last_checksum\":\"\(Hex.word(covered.lastChecksum))\",\"device\":\(identity.device),\"inode\":\(identity.inode),\"index\":\(quoted(runName)),\"count\":\(run.count)"
            if let bounds = try run.keyBounds() {
                line += ",\"first_key\":\(quoted(String(decoding: bounds.first, as: UTF8.self))),\"last_key\":\(quoted(String(decoding: bounds.last, as: UTF8.self)))"
            }
            manifest.append(line + "}")
        }
        let line = "{\"version\":1,\"store\":true,\"created\":\(currentTimeMillis()),\"count\":\(report.entries),\"segments\":[" + manifest.joined(separator: ",") + "]}\n"
        try FileSystem.writeAtomically(store.indexPath) { try $0.writeAll(line) }
        // Runs of segments a merge removed: only after the manifest no longer names them.
        let present = Set(segments.map(\.number))
        for name in try FileSystem.names(in: store.directory) {
            guard let number = Store.runNumber(name), !present.contains(number), !kept.contains(name) else { continue }
            try FileSystem.remove(store.path(of: name))
            report.removed += 1
        }
        return report
    }
}

/// Lookups and range reads through a store's index, correct however stale
/// the index is: unindexed records are scanned, stale runs are not used.
///
/// A lookup walks the segments newest first and stops at the first that
/// knows the key, so each segment is opened and checked against the
/// manifest only when the walk reaches it: a key written lately costs one
/// segment, not all of them. If a segment turns out gone or replaced since
/// the directory was listed (a merge ran meanwhile), the lookup starts over
/// with every segment opened at once, the one consistent view that lookups
/// of many keys and range reads always take.
public final class StoreLookup {
    public let store: Store
    private let maxRecord: Int
    private let warn: (String) -> Void
    private let manifest: [String: ManifestEntry]
    /// The segments as listed, oldest first, and each once opened and checked.
    private var listed: [StoreSegment]
    private var opened: [IndexedStoreSegment?]
    private let recordBuffer = ByteBuffer()
    /// Up to 64 KiB of a segment read at once for a range read, whose records
    /// come mostly in file order (keys written in order), and where from.
    private let aheadBuffer = ByteBuffer()
    private var ahead: (segment: Int, offset: UInt64)?
    /// Runs opened so far, by segment position.
    private var runs: [Int: IndexFile] = [:]
    /// Per segment, its unindexed records by key, built on first use by a
    /// lookup of many keys.
    private var overlays: [Int: [[UInt8]: IndexLocation]] = [:]
    /// Entries of the runs in use, as the manifest counts them.
    public let indexedEntries: UInt64

    public init(store: Store, maxRecord: Int, warn: @escaping (String) -> Void) throws {
        self.store = store
        self.maxRecord = maxRecord
        self.warn = warn
        manifest = try StoreIndex.readManifest(store, warn: warn)
        listed = try store.segments()
        opened = Array(repeating: nil, count: listed.count)
        indexedEntries = manifest.values.reduce(0) { $0 + $1.count }
    }

    /// A segment gone or replaced since the store was listed.
    private struct StoreChanged: Error {}

    /// Segment `n`, opened and checked against the manifest on first use.
    private func segment(_ n: Int) throws -> IndexedStoreSegment {
        if let segment = opened[n] { return segment }
        let reader: SegmentReader
        do {
            reader = try SegmentReader(path: listed[n].path)
        } catch let error as SystemError where error.errno == ENOENT {
            throw StoreChanged()
        }
        guard try FileSystem.identity(of: reader.path) == reader.identity else { throw StoreChanged() }
        let segment = try checked(reader, number: listed[n].number)
        opened[n] = segment
        return segment
    }

    /// Every segment, opened at once as one consistent view (see
    /// `Store.openSegments`), unless they all are already.
    private func openAll() throws -> [IndexedStoreSegment] {
        if !opened.contains(where: { $0 == nil }) { return opened.map { $0! } }
        let readers = try store.openSegments()
        var segments: [IndexedStoreSegment] = []
        for reader in readers {
            guard let number = Store.segmentNumber(FileSystem.name(of: reader.path)) else { continue }
            segments.append(try checked(reader, number: number))
        }
        listed = segments.map { StoreSegment(number: $0.number, path: $0.reader.path) }
        opened = segments
        runs = [:]
        overlays = [:]
        ahead = nil
        return segments
    }

    /// `reader` with what the manifest says its run covers, if that still
    /// matches the segment.
    private func checked(_ reader: SegmentReader, number: UInt64) throws -> IndexedStoreSegment {
        let name = FileSystem.name(of: reader.path)
        guard let entry = manifest[name] else { return IndexedStoreSegment(number: number, reader: reader, covered: 0, run: nil) }
        var reason = try entry.segment.mismatch(reader.file, size: reader.size, maxRecord: maxRecord, buffer: recordBuffer)
        if reason == nil, let identity = entry.identity, identity != reader.identity {
            reason = "another file than the one indexed (a merge replaced it)"
        }
        if let reason {
            warn("\(reader.path): \(reason); its index \(entry.index) is stale, scanning the segment")
            return IndexedStoreSegment(number: number, reader: reader, covered: 0, run: nil)
        }
        return IndexedStoreSegment(
            number: number, reader: reader, covered: entry.segment.size, run: (store.path(of: entry.index), entry.first, entry.last, entry.segment))
    }

    /// The run of segment `n` (opened), opened on first use. A run an update
    /// or a merge replaced or removed since the manifest was read (it no
    /// longer covers what the manifest says) is not used: the segment is then
    /// scanned whole, and callers that got nil after asking must look at the
    /// segment again.
    private func run(_ n: Int) throws -> IndexFile? {
        guard let segment = opened[n], let (path, _, _, covers) = segment.run else { return nil }
        if let open = runs[n] { return open }
        var run: IndexFile?
        do {
            run = try IndexFile(path: path)
        } catch let error as SystemError where error.errno == ENOENT {
            run = nil
        }
        guard let run, run.segments.count == 1, let indexed = run.segments.first,
              indexed.size == covers.size, indexed.lastOffset == covers.lastOffset, indexed.lastChecksum == covers.lastChecksum
        else {
            opened[n] = IndexedStoreSegment(number: segment.number, reader: segment.reader, covered: 0, run: nil)
            overlays[n] = nil
            return nil
        }
        runs[n] = run
        return run
    }

    /// The record at `location`, valid and whole, from the bytes read ahead
    /// (reading the next 64 KiB first if they do not hold it); nil for the
    /// plain read, which also says what is wrong with a record that is not.
    private func readAhead(_ location: IndexLocation) throws -> RecordView? {
        let reader = opened[location.segment]!.reader
        let end = location.offset + location.length
        if let (segment, offset) = ahead, segment != location.segment || location.offset < offset || end > offset + UInt64(aheadBuffer.count) {
            ahead = nil
        }
        if ahead == nil {
            guard end <= reader.size else { return nil }
            let want = Int(max(location.length, min(64 << 10, reader.size - location.offset)))
            aheadBuffer.removeAll()
            aheadBuffer.reserve(want)
            aheadBuffer.count = try reader.file.read(at: location.offset, into: UnsafeMutableRawBufferPointer(start: aheadBuffer.base, count: want))
            ahead = (location.segment, location.offset)
            guard end <= location.offset + UInt64(aheadBuffer.count) else { return nil }
        }
        let start = Int(location.offset - ahead!.offset)
        return try? RecordView.parse(
            UnsafeRawBufferPointer(start: aheadBuffer.base + start, count: Int(location.length)), maxRecord: maxRecord, verify: true)
    }

    /// The size of the store's segments, all of them opened.
    public func segmentBytes() throws -> UInt64 {
        try openAll().reduce(0) { $0 + $1.reader.size }
    }

    /// The newest record of `key`, scanning unindexed tails for it.
    public func lookup(_ key: UnsafeRawBufferPointer) throws -> LookupResult {
        do {
            return try lookupNewestFirst(key)
        } catch is StoreChanged {
            _ = try openAll()
            return try lookupNewestFirst(key)
        }
    }

    private func lookupNewestFirst(_ key: UnsafeRawBufferPointer) throws -> LookupResult {
        var n = listed.count - 1
        while n >= 0 {
            let segment = try segment(n)
            var found: IndexLocation?
            if segment.reader.size > segment.covered {
                try segment.reader.scanCommitted(from: segment.covered, maxRecord: maxRecord) { record, offset in
                    if record.key.count == key.count && compareBytes(record.key, key) == 0 {
                        found = IndexLocation(type: record.type, segment: n, offset: offset, length: UInt64(record.length), timestamp: record.timestamp)
                    }
                }
            }
            if found == nil, segment.mayHold(key) {
                // Not usable after all: the segment is looked at again, whole.
                guard let run = try run(n) else { continue }
                if var location = try run.find(key) {
                    location.segment = n
                    found = location
                }
            }
            if let found { return try read(key, at: found) }
            n -= 1
        }
        return .missing
    }

    /// Looks up many keys: each segment's unindexed records are read once.
    public func lookup(_ keys: [UnsafeRawBufferPointer], _ answer: (UnsafeRawBufferPointer, LookupResult) throws -> Void) throws {
        let segments = try openAll()
        for key in keys {
            var result = LookupResult.missing
            for n in segments.indices.reversed() {
                var found = try overlay(n)[Array(key)]
                if found == nil, opened[n]!.mayHold(key) {
                    if let run = try run(n) {
                        if var location = try run.find(key) {
                            location.segment = n
                            found = location
                        }
                    } else {
                        found = try overlay(n)[Array(key)]
                    }
                }
                if let found {
                    result = try read(key, at: found)
                    break
                }
            }
            try answer(key, result)
        }
    }

    private func overlay(_ n: Int) throws -> [[UInt8]: IndexLocation] {
        if let built = overlays[n] { return built }
        var built: [[UInt8]: IndexLocation] = [:]
        let segment = opened[n]!
        if segment.reader.size > segment.covered {
            try segment.reader.scanCommitted(from: segment.covered, maxRecord: maxRecord) { record, offset in
                built[Array(record.key)] = IndexLocation(type: record.type, segment: n, offset: offset, length: UInt64(record.length), timestamp: record.timestamp)
            }
        }
        overlays[n] = built
        return built
    }

    /// The live records of the keys in `range`, in key order: per segment,
    /// the run's entries from one binary search on and the unindexed
    /// records in the range; the newest segment's entry of a key wins, and
    /// a key whose newest record is a DELETE is left out.
    public func range(_ range: KeyRange, _ body: (UnsafeRawBufferPointer, LookupResult) throws -> Void) throws {
        var candidates: [(key: [UInt8], location: IndexLocation)] = []
        for n in try openAll().indices {
            if opened[n]!.mayHold(range), let run = try run(n) {
                try range.lowest.withUnsafeBytes { lowest in
                    try run.forEachEntry(from: lowest) { line in
                        guard range.admits(line.key) else { return false }
                        var location = try line.location()
                        location.segment = n
                        candidates.append((Array(line.key), location))
                        return true
                    }
                }
            }
            for (key, location) in try overlay(n) where key.withUnsafeBytes({ range.contains($0) }) {
                candidates.append((key, location))
            }
        }
        try KeyRange.forEachLive(&candidates, read: { try read($0, at: $1, readingAhead: true) }, body)
    }

    private func read(_ key: UnsafeRawBufferPointer, at location: IndexLocation, readingAhead: Bool = false) throws -> LookupResult {
        let segment = opened[location.segment]!
        let reader = segment.reader
        let record = try (readingAhead ? readAhead(location) : nil)
            ?? reader.record(at: location.offset, length: location.length, maxRecord: maxRecord, verify: true, buffer: recordBuffer)
        guard record.key.elementsEqual(key), UInt64(record.length) == location.length else {
            throw IndexError(path: store.path(of: Store.runName(segment.number)),
                             reason: "the entry for a key points at \(reader.path) offset \(location.offset), which holds another record; run logidx -o \(store.indexPath) \(store.directory)")
        }
        switch record.type {
        case .put: return .found(record, segment: reader.path, offset: location.offset)
        case .delete: return .deleted(record, segment: reader.path, offset: location.offset)
        }
    }
}

/// Keys with a prefix, or from `from` up to and including `to`.
public struct KeyRange: Sendable {
    public let lowest: [UInt8]
    public let highest: [UInt8]?
    public let prefix: [UInt8]?

    public init(prefix: [UInt8]) {
        self.prefix = prefix
        lowest = prefix
        highest = nil
    }

    /// Either bound may be open.
    public init(from: [UInt8]?, to: [UInt8]?) {
        prefix = nil
        lowest = from ?? []
        highest = to
    }

    /// For a walk in key order from `lowest`: false once past the range.
    func admits(_ key: UnsafeRawBufferPointer) -> Bool {
        if let prefix { return key.starts(with: prefix) }
        guard let highest else { return true }
        return highest.withUnsafeBytes { compareBytes(key, $0) <= 0 }
    }

    /// Hands `body` the newest candidate of each key, in key order, if it is
    /// a PUT. Candidates compare by key, then by (segment, offset): newest last.
    static func forEachLive(
        _ candidates: inout [(key: [UInt8], location: IndexLocation)],
        read: (UnsafeRawBufferPointer, IndexLocation) throws -> LookupResult,
        _ body: (UnsafeRawBufferPointer, LookupResult) throws -> Void
    ) throws {
        candidates.sort { a, b in
            let order = a.key.withUnsafeBytes { x in b.key.withUnsafeBytes { y in compareBytes(x, y) } }
            return order != 0 ? order < 0 : (a.location.segment, a.location.offset) < (b.location.segment, b.location.offset)
        }
        for (n, candidate) in candidates.enumerated() {
            if n + 1 < candidates.count && candidates[n + 1].key == candidate.key { continue }
            guard candidate.location.type == .put else { continue }
            try candidate.key.withUnsafeBytes { key in try body(key, try read(key, candidate.location)) }
        }
    }

    /// True if some key from `first` to `last` may lie in the range.
    func overlaps(first: [UInt8], last: [UInt8]) -> Bool {
        let reachesLowest = last.withUnsafeBytes { l in lowest.withUnsafeBytes { compareBytes(l, $0) >= 0 } }
        let startsInTime = first.withUnsafeBytes { f in
            if let prefix { return f.starts(with: prefix) || prefix.withUnsafeBytes { compareBytes(f, $0) < 0 } }
            guard let highest else { return true }
            return highest.withUnsafeBytes { compareBytes(f, $0) <= 0 }
        }
        return reachesLowest && startsInTime
    }

    public func contains(_ key: UnsafeRawBufferPointer) -> Bool {
        lowest.withUnsafeBytes { compareBytes(key, $0) >= 0 } && admits(key)
    }
}

extension StoreIndex {
    /// The manifest's entries by segment name; none if there is no manifest.
    static func readManifest(_ store: Store, warn: (String) -> Void) throws -> [String: ManifestEntry] {
        let path = store.indexPath
        guard FileSystem.exists(path) else { return [:] }
        // About 250 bytes a segment: room for hundreds of thousands.
        let bytes = try FileDescriptor.readAll(path, limit: 64 << 20)
        let parsed: Result<IndexHeaderFields, JSONLineError> = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONLineError) in try IndexHeaderParser().parse(raw) }
        }
        let manifest: IndexHeaderFields
        switch parsed {
        case .success(let value): manifest = value
        case .failure(let error):
            throw IndexError(path: path, reason: "not a store's index: \(error.message); run logidx -o \(path) \(store.directory)")
        }
        guard manifest.isStore, manifest.version == IndexFormat.version else {
            throw IndexError(path: path, reason: "not a store's index (no \"store\":true, version 1); run logidx -o \(path) \(store.directory)")
        }
        var entries: [String: ManifestEntry] = [:]
        for fields in manifest.segments {
            guard let name = fields.path, let size = fields.size, let lastOffset = fields.lastOffset,
                  let checksum = fields.lastChecksum.flatMap(Hex.parseWord), let index = fields.index,
                  Store.runNumber(index) != nil, let count = fields.count
            else { throw IndexError(path: path, reason: "a segment entry lacks path, size, last_offset, last_checksum, index or count") }
            let segment = IndexedSegment(path: store.path(of: name), size: size, lastChecksum: checksum, lastOffset: lastOffset)
            let identity = fields.device.flatMap { device in fields.inode.map { FileIdentity(device: device, inode: $0) } }
            entries[name] = ManifestEntry(
                segment: segment, identity: identity, index: index, count: count, first: fields.firstKey ?? [], last: fields.lastKey ?? [])
        }
        return entries
    }


    /// Each segment's live bytes (its records that are their key's newest
    /// in the whole store, and PUTs), by segment path, walking every run side
    /// by side in key order: memory for one entry per run, whatever the
    /// store's size. Nil unless the index covers every segment whole (run
    /// `logidx -o` first).
    public static func liveBytes(_ store: Store, maxRecord: Int) throws -> [String: UInt64]? {
        let manifest = try readManifest(store) { _ in }
        var runs: [IndexFile] = []
        var paths: [String] = []
        let buffer = ByteBuffer()
        for reader in try store.openSegments() {
            let name = FileSystem.name(of: reader.path)
            guard let entry = manifest[name], entry.segment.size == reader.size,
                  try entry.segment.mismatch(reader.file, size: reader.size, maxRecord: maxRecord, buffer: buffer) == nil,
                  entry.identity.map({ $0 == reader.identity }) ?? true
            else { return nil }
            let run = try IndexFile(path: store.path(of: entry.index))
            guard run.segments.first?.size == entry.segment.size, run.segments.first?.lastChecksum == entry.segment.lastChecksum else { return nil }
            runs.append(run)
            paths.append(reader.path)
        }
        var live = [UInt64](repeating: 0, count: runs.count)
        var positions = [Int](repeating: 0, count: runs.count)
        // Each run's current entry; its key lives in that run's own parser,
        // so the keys of all runs can be compared without copying them.
        var current: [IndexFile.EntryLine?] = Array(repeating: nil, count: runs.count)
        func load(_ n: Int) throws {
            if let (entry, next) = try runs[n].entry(at: positions[n]) {
                current[n] = entry
                positions[n] = next
                runs[n].release(before: next)
            } else {
                current[n] = nil
            }
        }
        for n in runs.indices { try load(n) }
        var same: [Int] = []
        while true {
            // The smallest key among the runs; of its entries, the newest
            // segment's (the highest) is the key's newest record.
            same.removeAll(keepingCapacity: true)
            for n in runs.indices {
                guard let entry = current[n] else { continue }
                guard let first = same.first, let smallest = current[first] else {
                    same.append(n)
                    continue
                }
                let order = compareBytes(entry.key, smallest.key)
                if order < 0 {
                    same.removeAll(keepingCapacity: true)
                    same.append(n)
                } else if order == 0 {
                    same.append(n)
                }
            }
            guard let newest = same.last, let entry = current[newest] else { break }
            let location = try entry.location()
            if location.type == .put { live[newest] += location.length }
            for n in same { try load(n) }
        }
        return Dictionary(uniqueKeysWithValues: zip(paths, live))
    }
}
