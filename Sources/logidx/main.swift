import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
#if canImport(Glibc)
import Glibc
#endif

let tool = Tool(name: "logidx", usage: """
    usage: logidx [-o INDEX] < scan.jsonl
           logidx [-o INDEX] SEG...
           logidx get [options] INDEX KEY...
           logidx get [options] INDEX - < keys.txt

    Build an index from scan output (logscan, with or without --no-values, or the
    address lines of logenc -a), one or more segments in one stream: the newest
    record of each key wins, a DELETE leaves a "delete" entry. The index is one
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

    build options:
      -o, --output INDEX  write the index to INDEX atomically (default: stdout)

    get options:
      --json              one JSON line per key: {"status":"found"|"deleted"|"missing",...}
      --report FILE       write timings and the lookup mode to FILE as JSON

      --max-record BYTES  refuse records longer than BYTES (default 64M; K, M, G)

      -h, --help          show this help and exit

    A found key prints its value and a newline. A deleted key: "logidx: KEY:
    deleted" on stderr; a key never written: "logidx: KEY: not found".

    exit status: 0 every key found (or the index written); 1 a key deleted or not
    found, a malformed input line, a damaged record or index; 2 usage or I/O error.

    examples:
      logscan --no-values data/segment-0001.dat | logidx -o data/index.json
      logidx -o data/index.json data/segment-0001.dat
      logidx get data/index.json name
      printf 'a\\nb\\n' | logidx get --json data/index.json -
      jq '.entries | length' data/index.json

    """)

var arguments = Arguments(tool: tool)
var output: String?
var segments: [String] = []
var maxRecord = RecordLayout.defaultMaxRecord
var first = true

// MARK: Building

@MainActor
func build(output: String?, segments: [String]) -> Never {
    if output == "" { tool.usageError("option -o needs a path") }
    let builder = IndexBuilder()
    do {
        if segments.isEmpty {
            try builder.addScanLines(from: .standardInput, maxRecord: maxRecord)
        } else {
            for path in segments {
                try FileSystem.requireSegment(path)
                try builder.addSegment(try SegmentReader(path: path), maxRecord: maxRecord)
            }
        }
    } catch {
        tool.fail(error)
    }

    do {
        try builder.write(indexAt: output)
    } catch {
        tool.fail(error)
    }
    exit(0)
}

// MARK: Lookups

@MainActor
func get() -> Never {
    var json = false
    var reportPath: String?
    var positionals: [[UInt8]] = []
    while let argument = arguments.next() {
        switch argument {
        case .option("-h"), .option("--help"): arguments.help()
        case .option("--json"): arguments.flag(); json = true
        case .option("--report"): reportPath = arguments.value(for: "--report")
        case .option("--max-record"): maxRecord = arguments.byteCount(for: "--max-record", range: Tool.maxRecordRange)
        case .positional(_, let bytes): positionals.append(bytes)
        case .option(let option): arguments.unknown(option)
        }
    }
    guard let indexBytes = positionals.first else { tool.usageError("get needs an INDEX and at least one KEY") }
    let keys = Array(positionals.dropFirst())
    if keys.isEmpty { tool.usageError("get needs at least one KEY, or - to read keys from stdin") }
    let keysFromInput = keys.count == 1 && keys[0] == Array("-".utf8)

    let loadStarted = monotonicMicroseconds()
    let store: IndexedStore
    do {
        store = try IndexedStore(indexPath: String(decoding: indexBytes, as: UTF8.self), maxRecord: maxRecord) { tool.warn($0) }
    } catch {
        tool.fail(error)
    }
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
        tool.fail(error)
    }
    let finished = monotonicMicroseconds()

    if let reportPath {
        let report = """
            {"mode":"\(store.mode.rawValue)","entries":\(store.entryCount),"segment_size":\(store.segmentBytes),\
            "index_load_ms":\(milliseconds(loaded - loadStarted - store.catchUpMicroseconds)),\
            "catch_up_ms":\(milliseconds(store.catchUpMicroseconds)),"lookup_ms":\(milliseconds(finished - lookupStarted)),\
            "keys":\(answers.found + answers.deleted + answers.missing),"found":\(answers.found),\
            "deleted":\(answers.deleted),"missing":\(answers.missing)}

            """
        do {
            try FileSystem.writeAtomically(reportPath) { try $0.writeAll(report) }
        } catch {
            tool.fail(error)
        }
    }
    exit(answers.deleted + answers.missing == 0 ? 0 : 1)
}

func milliseconds(_ microseconds: UInt64) -> String {
    let whole = microseconds / 1000
    let fraction = microseconds % 1000
    return "\(whole)." + String(repeating: "0", count: fraction < 10 ? 2 : fraction < 100 ? 1 : 0) + "\(fraction)"
}

/// Prints lookup results: values (or JSON lines) on stdout, misses on stderr.
@MainActor
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

// MARK: Dispatch

while let argument = arguments.next() {
    switch argument {
    case .positional("get", _) where first: get()
    case .option("-h"), .option("--help"): arguments.help()
    case .option("-o"), .option("--output"): output = arguments.value(for: "-o")
    case .option("--max-record"): maxRecord = arguments.byteCount(for: "--max-record", range: Tool.maxRecordRange)
    case .positional(let path, _): segments.append(path)
    case .option(let option): arguments.unknown(option)
    }
    first = false
}
build(output: output, segments: segments)
