import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI

let tool = Tool(ToolSpec(
    name: "logidx",
    synopsis: [
        "[-o INDEX] < scan.jsonl", "[-o INDEX] SEG...", "-o DIR/index.json DIR",
        "get [options] INDEX|DIR KEY...", "get [options] INDEX|DIR - < keys.txt",
        "range INDEX|DIR [--prefix P | --from A --to B] [--keys-only]",
    ],
    about: """
        Build an index from scan output (logscan, with or without --no-values, or the
        address lines of logenc -a), one or more segments in one stream: the newest
        record of each key wins (within a segment, the record at the higher offset,
        whatever order the lines come in), a DELETE leaves a "delete" entry. Scan
        lines must cover each segment from offset 0 with no gap. The index is one
        JSON document that jq reads whole, with one entry per line sorted by the
        key's UTF-8 bytes. With -o it is written atomically; segment paths are stored
        relative to the index's directory, so the two can move together.

        `get` reads keys through an index with a binary search over its lines and
        one positioned read of the record, checksum verified. If a segment grew since
        the index was written, the new tail is scanned and applied on top; if it is
        not the segment indexed (smaller, replaced, compacted), the segments are
        replayed in full with a warning. `get` never writes the index.

        Given segment files instead of stdin, it reads them itself, verifying every
        record, and writes nothing at all if one is damaged: the safe way to rebuild
        an index that a damaged scan must never replace.

        Given a store DIR, it brings the store's index up to date: one index per
        segment (DIR/index-N.json, each in the format above) and DIR/index.json, a
        one-line list of them. Only records no index covers yet are read: new
        segments, and the active segment from where its index ends. `get DIR` and
        `range DIR` search the segments newest first, scanning the records appended
        since the last update, so answers are never stale, only slower.

        `range` prints the live records of the keys in a range, in key order, as JSON
        lines like logscan's (deleted keys are left out), at the cost of one binary
        search per index plus the keys printed; with --keys-only, only the keys.

        A found key prints its value and a newline. A deleted key: "logidx: KEY:
        deleted" on stderr; a key never written: "logidx: KEY: not found" (a key
        holding control characters is shown JSON-quoted).
        """,
    options: [
        Option(["-o", "--output"], "INDEX", "build: write the index to INDEX atomically (default: stdout)", completion: .file),
        Option(["--json"], nil, "get: one JSON line per key: {\"status\":\"found\"|\"deleted\"|\"missing\",...}"),
        Option(["--report"], "FILE", "get: write timings and the lookup mode to FILE as JSON", completion: .file),
        Option(["--prefix"], "P", "range: keys that start with P"),
        Option(["--from"], "A", "range: keys from A (inclusive)"),
        Option(["--to"], "B", "range: keys up to B (inclusive)"),
        Option(["--keys-only"], nil, "range: print the keys only, one per line (JSON-quoted if they hold control characters)"),
        Option.maxRecord,
        Option.progress,
    ],
    operands: .file,
    exitStatus: """
        0 every key found (or the index written); 1 a key deleted or not found, a \
        malformed input line, a damaged record or index; 2 usage or I/O error.
        """,
    examples: [
        "logidx -o data/index.json data",
        "logidx get data name",
        "printf 'a\\nb\\n' | logidx get --json data -",
        "logidx range data --prefix user- --keys-only",
        "logscan --no-values one.seg | logidx -o one.json",
        "jq '.entries | length' one.json",
    ]))

// MARK: Building

func build(_ arguments: ParsedArguments) throws -> ExitCode {
    for option in ["--json", "--report"] where arguments.has(option) { throw UsageError("\(option) is a get option") }
    for option in ["--prefix", "--from", "--to", "--keys-only"] where arguments.has(option) { throw UsageError("\(option) is a range option") }
    let output = try arguments.path("--output")
    let maxRecord = try arguments.maxRecord()
    let builder = IndexBuilder()
    let segments = arguments.positionalStrings
    if let path = segments.first(where: Store.isStore) {
        guard segments.count == 1 else { throw UsageError("a store is indexed alone: logidx -o \(path)/index.json \(path)") }
        let store = Store(path)
        if let output, FileSystem.name(of: output) != Store.indexName
            || FileSystem.absolutePath(FileSystem.directory(of: output)) != FileSystem.absolutePath(store.directory) {
            throw UsageError("a store's index is \(store.indexPath) (its runs live beside it), not \(output)")
        }
        _ = try StoreIndex.update(store, maxRecord: maxRecord) { tool.warn($0) }
        return .success
    }
    if let output, Store.isStore(FileSystem.directory(of: output)), FileSystem.exists(Store(FileSystem.directory(of: output)).lockPath) {
        throw UsageError("\(output): inside the store \(FileSystem.directory(of: output)), whose index is made by logidx -o \(Store(FileSystem.directory(of: output)).indexPath) \(FileSystem.directory(of: output))")
    }
    let meter = segments.isEmpty ? Progress(tool, arguments, reading: .standardInput) : Progress(tool, arguments, files: segments)
    if segments.isEmpty {
        try builder.addScanLines(from: .standardInput, maxRecord: maxRecord, progress: meter.reporter())
    } else {
        for path in segments {
            try FileSystem.requireSegment(path)
            try builder.addSegment(try SegmentReader(path: path), maxRecord: maxRecord, progress: meter.reporter())
        }
    }
    meter.finish()
    try builder.write(indexAt: output)
    return .success
}

// MARK: Lookups

func get(_ arguments: ParsedArguments) throws -> ExitCode {
    if arguments.has("--output") { throw UsageError("-o is a build option; get never writes the index") }
    if arguments.has("--progress") { throw UsageError("--progress is a build option") }
    let json = arguments.has("--json")
    let reportPath = try arguments.path("--report")
    let maxRecord = try arguments.maxRecord()
    let positionals = Array(arguments.positionals.dropFirst())
    guard let indexBytes = positionals.first else { throw UsageError("get needs an INDEX and at least one KEY") }
    let keys = Array(positionals.dropFirst())
    if keys.isEmpty { throw UsageError("get needs at least one KEY, or - to read keys from stdin") }
    let keysFromInput = keys.count == 1 && keys[0] == Array("-".utf8)

    let loadStarted = monotonicMicroseconds()
    let store = try Lookups(String(decoding: indexBytes, as: UTF8.self), maxRecord: maxRecord)
    let loaded = monotonicMicroseconds()

    let answers = Answers(json: json)
    let lookupStarted = monotonicMicroseconds()
    do {
        if keysFromInput {
            // Keys are answered a read at a time, so a slow producer still
            // gets answers as it goes, and a fast one gets sorted batches.
            var batch: [UnsafeRawBufferPointer] = []
            try LineReader(source: .standardInput, maxLine: maxRecord).forEachLine({ key, _ in
                batch.append(key)
            }, afterChunk: {
                try store.lookup(batch) { key, result in try answers.answer(key, result) }
                batch.removeAll(keepingCapacity: true)
            })
        } else {
            for key in keys {
                try key.withUnsafeBytes { key in try answers.answer(key, try store.lookup(key)) }
            }
        }
        try answers.output.flush()
    } catch {
        try? answers.output.flush()
        throw error
    }
    let finished = monotonicMicroseconds()

    if let reportPath {
        let report = """
            {"mode":"\(store.mode)","entries":\(store.entryCount),"segment_size":\(try store.segmentBytes()),\
            "index_load_ms":\(milliseconds(loaded - loadStarted - store.catchUpMicroseconds)),\
            "catch_up_ms":\(milliseconds(store.catchUpMicroseconds)),"lookup_ms":\(milliseconds(finished - lookupStarted)),\
            "keys":\(answers.found + answers.deleted + answers.missing),"found":\(answers.found),\
            "deleted":\(answers.deleted),"missing":\(answers.missing)}

            """
        try FileSystem.writeAtomically(reportPath) { try $0.writeAll(report) }
    }
    return answers.deleted + answers.missing == 0 ? .success : .dataRejected
}

func milliseconds(_ microseconds: UInt64) -> String {
    let whole = microseconds / 1000
    let fraction = microseconds % 1000
    return "\(whole)." + String(repeating: "0", count: fraction < 10 ? 2 : fraction < 100 ? 1 : 0) + "\(fraction)"
}

/// Prints lookup results: values (or JSON lines) on stdout, misses on stderr.
final class Answers {
    let json: Bool
    let output = OutputBuffer(sink: .standardOutput)
    var found = 0
    var deleted = 0
    var missing = 0

    init(json: Bool) {
        self.json = json
    }

    func answer(_ key: UnsafeRawBufferPointer, _ result: LookupResult) throws {
        switch result {
        case .found(let record, let segment, let offset):
            found += 1
            if json {
                try RecordJSON.write(record, offset: offset, shape: RecordJSON.Shape(segment: segment, includeValue: true, status: "found"), to: output)
            } else {
                try output.append(record.value)
                try output.append([0x0A])
            }
        case .deleted(let record, let segment, let offset):
            deleted += 1
            if json {
                try RecordJSON.write(record, offset: offset, shape: RecordJSON.Shape(segment: segment, includeValue: false, status: "deleted"), to: output)
            } else {
                try report(key, "deleted")
            }
        case .missing:
            missing += 1
            if json {
                try output.append("{\"status\":\"missing\",\"key\":" + String(decoding: JSONText.quoted(String(decoding: key, as: UTF8.self)), as: UTF8.self) + "}\n")
            } else {
                try report(key, "not found")
            }
        }
    }

    /// Misses go to stderr in order with the values on stdout.
    private func report(_ key: UnsafeRawBufferPointer, _ status: String) throws {
        try output.flush()
        tool.warn("\(Tool.displayKey(key)): \(status)")
    }
}

/// An index file or a store, answering the same questions.
enum Lookups {
    case file(IndexedStore)
    case store(StoreLookup)

    /// A directory or a store's `index.json` is the store; any other path an index.
    init(_ path: String, maxRecord: Int) throws {
        if Store.isStore(path) {
            self = .store(try StoreLookup(store: Store(path), maxRecord: maxRecord) { tool.warn($0) })
        } else if StoreIndex.isManifest(path) {
            self = .store(try StoreLookup(store: Store(FileSystem.directory(of: path)), maxRecord: maxRecord) { tool.warn($0) })
        } else {
            self = .file(try IndexedStore(indexPath: path, maxRecord: maxRecord) { tool.warn($0) })
        }
    }

    func lookup(_ key: UnsafeRawBufferPointer) throws -> LookupResult {
        switch self {
        case .file(let index): try index.lookup(key)
        case .store(let store): try store.lookup(key)
        }
    }

    func lookup(_ keys: [UnsafeRawBufferPointer], _ answer: (UnsafeRawBufferPointer, LookupResult) throws -> Void) throws {
        switch self {
        case .file(let index): try index.lookup(keys, answer)
        case .store(let store): try store.lookup(keys, answer)
        }
    }

    func range(_ range: KeyRange, _ body: (UnsafeRawBufferPointer, LookupResult) throws -> Void) throws {
        switch self {
        case .file(let index): try index.range(range, body)
        case .store(let store): try store.range(range, body)
        }
    }

    var mode: String {
        switch self {
        case .file(let index): index.mode.rawValue
        case .store: "store"
        }
    }

    var entryCount: UInt64 {
        switch self {
        case .file(let index): index.entryCount
        case .store(let store): store.indexedEntries
        }
    }

    func segmentBytes() throws -> UInt64 {
        switch self {
        case .file(let index): index.segmentBytes
        case .store(let store): try store.segmentBytes()
        }
    }

    var catchUpMicroseconds: UInt64 {
        switch self {
        case .file(let index): index.catchUpMicroseconds
        case .store: 0
        }
    }
}

// MARK: Range reads

func range(_ arguments: ParsedArguments) throws -> ExitCode {
    for option in ["--output", "--json", "--report"] where arguments.has(option) { throw UsageError("\(option) is not a range option") }
    let maxRecord = try arguments.maxRecord()
    let positionals = Array(arguments.positionals.dropFirst())
    guard positionals.count == 1, let index = positionals.first else {
        throw UsageError(positionals.isEmpty ? "range needs an INDEX or a store DIR" : "range takes one INDEX or DIR; the keys are chosen with --prefix, or --from and --to")
    }
    let prefix = arguments.bytes("--prefix")
    let from = arguments.bytes("--from")
    let to = arguments.bytes("--to")
    if prefix != nil && (from != nil || to != nil) { throw UsageError("--prefix excludes --from and --to") }
    let keyRange = prefix.map { KeyRange(prefix: $0) } ?? KeyRange(from: from, to: to)
    let keysOnly = arguments.has("--keys-only")
    let lookups = try Lookups(String(decoding: index, as: UTF8.self), maxRecord: maxRecord)
    let output = OutputBuffer(sink: .standardOutput)
    try lookups.range(keyRange) { key, result in
        guard case .found(let record, let segment, let offset) = result else { return }
        if keysOnly {
            try output.append(Array(Tool.displayKey(key).utf8) + [0x0A])
        } else {
            try RecordJSON.write(record, offset: offset, shape: RecordJSON.Shape(segment: segment, includeValue: true), to: output)
        }
    }
    try output.flush()
    return .success
}

// MARK: Dispatch

tool.main { arguments in
    switch arguments.positionals.first {
    case Array("get".utf8): try get(arguments)
    case Array("range".utf8): try range(arguments)
    default: try build(arguments)
    }
}
