import Glibc
import LogFormat
import LogIO
import LogJSON
import LogStore
import Testing

private func put(_ key: String, _ value: String, continues: Bool = false, timestamp: UInt64 = 1) -> [UInt8] {
    Record.encode(type: .put, key: Array(key.utf8), value: Array(value.utf8), timestamp: timestamp, continues: continues)
}

private func delete(_ key: String, timestamp: UInt64 = 1) -> [UInt8] {
    Record.encode(type: .delete, key: Array(key.utf8), value: [], timestamp: timestamp)
}

private func append(_ appender: SegmentAppender, _ bytes: [UInt8]) throws -> [AppendedRun] {
    try bytes.withUnsafeBytes { try appender.append($0, sync: false) }
}

private func names(_ runs: [AppendedRun]) -> [String] {
    runs.map { String($0.segment.split(separator: "/").last!) }
}

/// The newest value of each key, as a scan of the whole store sees it.
private func scanModel(_ store: Store) throws -> [String: String] {
    var model: [String: String?] = [:]
    for reader in try store.openSegments() {
        try reader.scan(maxRecord: RecordLayout.defaultMaxRecord, verify: true) { record, _ in
            model[String(decoding: record.key, as: UTF8.self)] = record.type == .put ? String(decoding: record.value, as: UTF8.self) : nil as String?
        }
    }
    return model.compactMapValues { $0 }
}

private func lookup(_ store: Store, _ key: String) throws -> String? {
    let lookups = try StoreLookup(store: store, maxRecord: RecordLayout.defaultMaxRecord) { _ in }
    return try Array(key.utf8).withUnsafeBytes { key in
        if case .found(let record, _, _) = try lookups.lookup(key) { return String(decoding: record.value, as: UTF8.self) }
        return nil
    }
}

@Suite("Store layout")
struct StoreLayoutTests {
    @Test("segments are ordered by number, not by name; temporaries are ignored")
    func order() throws {
        let dir = try ScratchDirectory()
        for name in ["segment-0010.dat", "segment-0002.dat", "segment-10000.dat", "LOCK", "index.json", "index-0002.json", ".index.json.tmp-x1"] {
            _ = try dir.write(name, [])
        }
        let segments = try Store(dir.path).segments()
        #expect(segments.map(\.number) == [2, 10, 10000])
        #expect(segments.map { String($0.path.split(separator: "/").last!) } == ["segment-0002.dat", "segment-0010.dat", "segment-10000.dat"])
    }

    @Test("a foreign file, a short number or two names for one number refuse the store", arguments: [
        ["notes.txt"], ["segment-1.dat"], ["segment-0007.dat", "segment-00007.dat"], ["segment-0001.dat.lock"],
    ])
    func foreign(_ files: [String]) throws {
        let dir = try ScratchDirectory()
        for name in files { _ = try dir.write(name, []) }
        #expect(throws: PathRefused.self) { try Store(dir.path).segments() }
    }

    @Test("a segment of a store is recognised by the LOCK beside it")
    func containing() throws {
        let dir = try ScratchDirectory()
        let segment = try dir.write("segment-0001.dat", [])
        #expect(Store.containing(segment: segment) == nil)
        _ = try dir.write("LOCK", [])
        #expect(Store.containing(segment: segment)?.directory == dir.path)
        #expect(throws: PathRefused.self) { try Store.refuseStoreSegment(segment, use: "x") }
    }
}

@Suite("Appending to a store")
struct StoreAppendTests {
    @Test("rollover: what does not fit starts the next segment, and the full one is closed")
    func rollover() throws {
        let dir = try ScratchDirectory()
        let store = Store(dir.file("s"))
        let appender = try SegmentAppender(store: store, segmentSize: 100)
        let a = put("a", "1"), b = put("b", "2"), c = put("c", "3"), d = put("d", "4")
        #expect(a.count == 30)
        // Three 30-byte records fit in 100 bytes, the fourth starts segment 2.
        let runs = try append(appender, a + b + c + d)
        #expect(names(runs) == ["segment-0001.dat", "segment-0002.dat"])
        #expect(runs.map(\.offset) == [0, 0])
        #expect(runs.map(\.count) == [90, 30])
        #expect(try readFile(store.segmentPath(1)) == a + b + c)
        #expect(try readFile(store.segmentPath(2)) == d)
    }

    @Test("a batch is never split: one that does not fit moves whole; a batch larger than the size gets a segment of its own")
    func batches() throws {
        let dir = try ScratchDirectory()
        let store = Store(dir.file("s"))
        let appender = try SegmentAppender(store: store, segmentSize: 100)
        let single = put("a", "1")
        let batch = put("b", "1", continues: true) + put("c", "2", continues: true) + put("d", "3")
        _ = try append(appender, single)
        // 30 + 90 > 100: the batch starts segment 2, whole.
        #expect(names(try append(appender, batch)) == ["segment-0002.dat"])
        let big = put("e", String(repeating: "x", count: 40), continues: true) + put("f", String(repeating: "y", count: 40))
        #expect(big.count > 100)
        #expect(names(try append(appender, big)) == ["segment-0003.dat"])
        #expect(names(try append(appender, single)) == ["segment-0004.dat"])
        #expect(try readFile(store.segmentPath(2)) == batch)
        #expect(try readFile(store.segmentPath(3)) == big)
    }

    @Test("a writer whose segment another writer closed moves to the new active segment")
    func twoWriters() throws {
        let dir = try ScratchDirectory()
        let store = Store(dir.file("s"))
        let first = try SegmentAppender(store: store, segmentSize: 60)
        let second = try SegmentAppender(store: store, segmentSize: 60)
        _ = try append(first, put("a", "1") + put("b", "2"))
        #expect(names(try append(second, put("c", "3"))) == ["segment-0002.dat"])
        #expect(names(try append(first, put("d", "4"))) == ["segment-0002.dat"])
        #expect(try scanModel(store) == ["a": "1", "b": "2", "c": "3", "d": "4"])
    }
}

@Suite("The store's index")
struct StoreIndexTests {
    @Test("an update reads only what no run covers, and gives the runs a full build would")
    func incremental() throws {
        let dir = try ScratchDirectory()
        let store = Store(dir.file("s"))
        let appender = try SegmentAppender(store: store, segmentSize: 200)
        var bytes: [UInt8] = []
        for n in 0..<20 { bytes += put("k\(n % 7)", "v\(n)", timestamp: UInt64(n)) }
        _ = try append(appender, bytes)
        let first = try StoreIndex.update(store, maxRecord: RecordLayout.defaultMaxRecord) { _ in }
        #expect(first.records == 20)
        let closed = try store.segments().dropLast().map { try readFile(store.path(of: Store.runName($0.number))) }
        _ = try append(appender, put("k1", "newest", timestamp: 99) + delete("k2", timestamp: 100))
        let second = try StoreIndex.update(store, maxRecord: RecordLayout.defaultMaxRecord) { _ in }
        #expect(second.records == 2)
        #expect(second.built + second.extended <= 2)
        // Closed runs are left as they were.
        for (segment, before) in zip(try store.segments(), closed) {
            #expect(try readFile(store.path(of: Store.runName(segment.number))) == before)
        }
        // Every run's entries equal those of a build from scratch.
        for segment in try store.segments() {
            let builder = IndexBuilder()
            try builder.addSegment(try SegmentReader(path: segment.path), maxRecord: RecordLayout.defaultMaxRecord)
            let fresh = dir.file("fresh.json")
            try builder.write(indexAt: fresh)
            func entries(_ path: String) throws -> [UInt8] {
                Array(try readFile(path).split(separator: 0x0A, omittingEmptySubsequences: false).dropFirst().joined(separator: [0x0A]))
            }
            #expect(try entries(store.path(of: Store.runName(segment.number))) == entries(fresh))
        }
        #expect(try lookup(store, "k1") == "newest")
        #expect(try lookup(store, "k2") == nil)
    }

    @Test("lookups and ranges answer like a scan, indexed or not, and after merges")
    func model() throws {
        var rng = SplitMix64(seed: 7)
        let dir = try ScratchDirectory()
        let store = Store(dir.file("s"))
        let appender = try SegmentAppender(store: store, segmentSize: 300)
        for round in 0..<12 {
            var bytes: [UInt8] = []
            for n in 0..<25 {
                let key = "k\(Int.random(in: 0..<30, using: &rng))"
                bytes += Bool.random(using: &rng) && n % 3 == 0 ? delete(key) : put(key, "r\(round)n\(n)")
            }
            _ = try append(appender, bytes)
            if round % 3 == 1 { _ = try StoreIndex.update(store, maxRecord: RecordLayout.defaultMaxRecord) { _ in } }
            if round % 4 == 3 { _ = try StoreMerge.merge(store, minGarbage: 0, maxRecord: RecordLayout.defaultMaxRecord) }
            let want = try scanModel(store)
            let lookups = try StoreLookup(store: store, maxRecord: RecordLayout.defaultMaxRecord) { _ in }
            for n in 0..<30 {
                let key = "k\(n)"
                let got: String? = try Array(key.utf8).withUnsafeBytes { raw in
                    if case .found(let record, _, _) = try lookups.lookup(raw) { return String(decoding: record.value, as: UTF8.self) }
                    return nil
                }
                #expect(got == want[key], "round \(round) key \(key)")
            }
            var ranged: [String: String] = [:]
            try lookups.range(KeyRange(prefix: Array("k1".utf8))) { key, result in
                if case .found(let record, _, _) = result {
                    ranged[String(decoding: key, as: UTF8.self)] = String(decoding: record.value, as: UTF8.self)
                }
            }
            #expect(ranged == want.filter { $0.key.hasPrefix("k1") }, "round \(round)")
        }
    }
}

@Suite("Merging a store")
struct StoreMergeTests {
    @Test("a merge keeps every live key's newest value, drops deleted keys for good, and never touches the active segment")
    func merge() throws {
        let dir = try ScratchDirectory()
        let store = Store(dir.file("s"))
        let appender = try SegmentAppender(store: store, segmentSize: 100)
        _ = try append(appender, put("a", "1") + put("b", "1") + put("c", "1"))
        _ = try append(appender, delete("a") + put("b", "2") + put("d", "1"))
        _ = try append(appender, put("e", "1"))
        let active = try store.segments().last!
        let activeBytes = try readFile(active.path)
        let before = try scanModel(store)
        let report = try StoreMerge.merge(store, minGarbage: 0, maxRecord: RecordLayout.defaultMaxRecord)
        #expect(report.merged)
        // The DELETE of a hides its PUT, both closed: it stays until the next merge.
        #expect(report.keptTombstones == 1)
        #expect(report.droppedOverwritten == 2)
        #expect(try scanModel(store) == before)
        #expect(try readFile(active.path) == activeBytes)
        #expect(try store.segments().count == 2)
        #expect(try lookup(store, "a") == nil)
        _ = try append(appender, put("f", String(repeating: "x", count: 80)))
        let again = try StoreMerge.merge(store, minGarbage: 0, maxRecord: RecordLayout.defaultMaxRecord)
        #expect(again.droppedTombstones == 1)
        #expect(again.keptTombstones == 0)
        #expect(try lookup(store, "a") == nil)
    }

    @Test("a merge in slices of a few records, runs merged two at a time, writes what a merge in one slice writes")
    func slices() throws {
        let dir = try ScratchDirectory()
        var tiny = MergeLimits()
        tiny.sliceRecords = 3
        tiny.sliceBytes = 200
        tiny.fanIn = 2
        // Smaller than one entry: the buffer must grow.
        tiny.runBuffer = 16
        var results: [(report: String, segments: [[UInt8]])] = []
        for (name, limits) in [("whole", MergeLimits()), ("sliced", tiny)] {
            let store = Store(dir.file(name))
            let appender = try SegmentAppender(store: store, segmentSize: 300)
            // The same records for both: overwrites within and across
            // segments, tombstones hiding a PUT or not, batches partly kept,
            // and two keys whose hashes collide (CompactionTests).
            var seed: UInt64 = 7
            func next(_ bound: Int) -> Int {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return Int((seed >> 33) % UInt64(bound))
            }
            for _ in 0..<120 {
                var batch: [UInt8] = []
                let records = 1 + next(3)
                for k in 0..<records {
                    let key = ["key-47377", "key-51429", "k\(next(12))"][min(next(8), 2)]
                    let value = next(4) == 0 ? nil : String(repeating: "v", count: next(40))
                    batch += Record.encode(type: value == nil ? .delete : .put, key: Array(key.utf8), value: Array((value ?? "").utf8),
                                           timestamp: 1, continues: k + 1 < records)
                }
                _ = try append(appender, batch)
            }
            let report = try StoreMerge.merge(store, minGarbage: 0, maxRecord: RecordLayout.defaultMaxRecord, limits: limits)
            #expect(report.merged)
            #expect(try FileSystem.names(in: store.directory).allSatisfy { !$0.hasPrefix(".") })
            let json = report.json.replacing(store.directory, with: "STORE")
            results.append((String(json[..<json.firstRange(of: "\"duration_ms\"")!.lowerBound]), try store.segments().map { try readFile($0.path) }))
        }
        #expect(results[0].report == results[1].report)
        #expect(results[0].segments == results[1].segments)
    }

    @Test("below --min-garbage nothing changes, and the report says why")
    func minGarbage() throws {
        let dir = try ScratchDirectory()
        let store = Store(dir.file("s"))
        let appender = try SegmentAppender(store: store, segmentSize: 100)
        // Closed: a, b, a (a third of it garbage); active: c.
        _ = try append(appender, put("a", "1") + put("b", "1") + put("a", "2") + put("c", "1"))
        let before = try store.segments()
        let report = try StoreMerge.merge(store, minGarbage: 0.9, maxRecord: RecordLayout.defaultMaxRecord)
        #expect(!report.merged)
        #expect(report.skipped?.contains("below --min-garbage") == true)
        #expect(report.garbageBytes == 30)
        #expect(try store.segments() == before)
    }
}
