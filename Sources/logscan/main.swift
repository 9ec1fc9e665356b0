import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
import Glibc

let tool = Tool(ToolSpec(
    name: "logscan",
    synopsis: ["[options] SEG|DIR...", "--at OFFSET SEG", "--count SEG|DIR...", "--follow [--cursor-file F | --after CURSOR] SEG|DIR"],
    about: """
        Scan segment files from the start (or --from OFFSET), verify every record's
        structure and checksum, and print each record as a JSON line (a store DIR
        stands for its segments, oldest first, opened together as one consistent
        view even while a merge replaces some):

          {"segment":"SEG","offset":0,"length":35,"type":"put","key":"name",
           "value":"ish","timestamp":1700000000000,"checksum":"0xcff8f08d"}

        At the first damaged record of a segment, the records before it have been
        printed, then "logscan: SEG: offset N: REASON" goes to stderr; the other
        segments are still scanned and the exit status is 1. An empty segment is
        noted on stderr and is not an error. Only committed records are shown: the
        records of a batch appear with its last record, and a segment that ends
        inside a batch ends in damage ("uncommitted batch").

        With --follow, logscan prints every committed record of SEG, then sleeps
        until records are committed and prints them too, like tail -f, until it is
        killed or its output closes; it uses no CPU while nothing is appended. A
        cursor is one JSON line naming the last record printed:

          {"segment":"SEG","offset":90,"length":30,"checksum":"0x4355b4c2"}

        --cursor-file F resumes after the cursor in F (if F exists) and rewrites F
        atomically after each group of records reaches stdout; --after CURSOR
        resumes after a cursor given on the command line. If the cursor's record is
        gone (the segment was compacted), the segment is followed from its start:
        records may be seen again, never missed. If SEG is compacted in place while
        followed, logscan prints the rest of the old file, says how to resume, and
        exits 1. A store is followed across its segments: once a segment is closed
        (a writer started the next one), the follower moves on. If a merge (logpack
        DIR) replaced the closed segments it had not finished, it starts again from
        the store's first segment, with a note: records may be seen again, never
        missed.
        """,
    options: [
        Option(["--at"], "OFFSET",
               "print only the record at address OFFSET (as printed by logenc -a), read with two positioned reads"),
        Option(["--from"], "OFFSET", "start the scan at OFFSET, which must be a record address"),
        Option(["--count"], nil,
               "print one summary line per segment instead of records (for a store, then a total line, and when its index is up to date live and garbage bytes on every line): {\"segment\":\"SEG\",\"records\":N,\"puts\":N,\"deletes\":N,\"bytes\":N}"),
        Option(["--no-values"], nil, "leave out \"value\" and \"value_b64\""),
        Option(["--no-verify"], nil, "skip checksum and key UTF-8 checks (structure is still checked)"),
        Option(["-f", "--follow"], nil, "print records as they are committed, until killed or stdout closes"),
        Option(["--cursor-file"], "F", "with --follow: resume after the cursor in F and keep F up to date", completion: .file),
        Option(["--after"], "CURSOR", "with --follow: resume after CURSOR (a cursor line; empty: from the start)"),
        Option.maxRecord,
        Option.progress,
    ],
    operands: .file,
    exitStatus: """
        0 every record valid; 1 damage found, or OFFSET is not in the segment; 2 usage \
        error, or a segment that cannot be read.
        """,
    examples: [
        "logscan data/segment-0001.dat | jq -r 'select(.type == \"put\") | .key'",
        "logscan data | jq -r 'select(.type == \"put\") | .key'",
        "logscan --count data",
        "logscan --at 35 data/segment-0001.dat",
        "logscan --no-values data/segment-0001.dat | logidx > data/index.json",
    ]))

struct Scan {
    let segments: [String]
    let at: UInt64?
    let from: UInt64
    let countOnly: Bool
    let includeValues: Bool
    let verify: Bool
    let maxRecord: Int
    let follow: Bool
    let cursorFile: String?
    let after: Cursor?
    let meter: Progress?

    init(_ arguments: ParsedArguments) throws(UsageError) {
        segments = arguments.positionalStrings
        at = try arguments.unsigned("--at")
        from = try arguments.unsigned("--from") ?? 0
        countOnly = arguments.has("--count")
        includeValues = !arguments.has("--no-values")
        verify = !arguments.has("--no-verify")
        maxRecord = try arguments.maxRecord()
        follow = arguments.has("--follow")
        cursorFile = try arguments.path("--cursor-file")
        // An empty cursor is the start: what `logsync position` prints for an
        // empty bucket, so its resume command works the first time too.
        if let text = arguments.string("--after"), !text.isEmpty {
            do throws(CursorError) {
                after = try Cursor(parsing: text)
            } catch {
                throw UsageError("option --after: \(error.reason)")
            }
        } else {
            after = nil
        }
        if segments.isEmpty { throw UsageError("no segment given") }
        if follow {
            if segments.count > 1 { throw UsageError("--follow follows one segment") }
            if at != nil || countOnly || arguments.has("--from") { throw UsageError("--follow cannot be combined with --at, --count or --from") }
        } else if cursorFile != nil || after != nil {
            throw UsageError("--cursor-file and --after are used with --follow")
        }
        if arguments.has("--from"), let store = segments.first(where: Store.isStore) {
            throw UsageError("--from takes an address in one segment, not the store \(store)")
        }
        if at != nil {
            if segments.count > 1 { throw UsageError("--at reads one segment") }
            if Store.isStore(segments[0]) { throw UsageError("--at reads a segment, not a store: give the segment an address names") }
            if countOnly || arguments.has("--from") { throw UsageError("--at cannot be combined with --count or --from") }
        }
        if arguments.has("--progress") && !countOnly { throw UsageError("--progress is used with --count") }
        meter = countOnly ? Progress(tool, arguments, files: segments) : nil
    }

    /// Follows the one segment: records as they are committed, the cursor
    /// saved after each group reached stdout.
    func runFollow() throws -> ExitCode {
        // A follower whose reader went away learns it from EPIPE, and ends quietly.
        signal(SIGPIPE, SIG_IGN)
        let path = segments[0]
        var start = after
        if start == nil, let cursorFile, FileSystem.exists(cursorFile) {
            let text = try String(decoding: FileDescriptor.readAll(cursorFile), as: UTF8.self)
            do throws(CursorError) {
                start = try Cursor(parsing: text)
            } catch {
                throw UsageError("\(cursorFile): \(error.reason)")
            }
        }
        if Store.isStore(path) { return try followStore(Store(path), after: start) }
        if let start, start.segment != path, try FileSystem.identity(of: start.segment) != FileSystem.identity(of: path) {
            throw UsageError("the cursor names \(start.segment), not \(path)")
        }
        let follower = try Follower(path: path, after: start, maxRecord: maxRecord, verify: verify) { tool.warn($0) }
        return try follow(cursor: { follower.cursor }) { record, delivered in
            try follower.run({ try record($0, $1, path) }, delivered: delivered)
        }
    }

    /// Follows a store across its segments; the cursor names a segment of it.
    func followStore(_ store: Store, after start: Cursor?) throws -> ExitCode {
        if let start, try FileSystem.identity(of: FileSystem.directory(of: start.segment)) != FileSystem.identity(of: store.directory) {
            throw UsageError("the cursor names \(start.segment), not a segment of the store \(store.directory)")
        }
        let follower = try StoreFollower(store: store, after: start, maxRecord: maxRecord, verify: verify) { tool.warn($0) }
        return try follow(cursor: { follower.cursor }) { record, delivered in
            try follower.run(record, delivered: delivered)
        }
    }

    /// Runs a follower: its records go to stdout as JSON lines, and the
    /// cursor is saved after each group of them reached stdout.
    func follow(
        cursor: @escaping () -> Cursor?,
        _ run: (_ record: (RecordView, UInt64, String) throws -> Void, _ delivered: () throws -> Void) throws -> Void
    ) throws -> ExitCode {
        let output = OutputBuffer(sink: .standardOutput)
        var shape = RecordJSON.Shape(segment: nil, includeValue: includeValues)
        var shapePath = ""
        var saved = cursor()
        do {
            try run({ record, offset, segment in
                if segment != shapePath {
                    shape = RecordJSON.Shape(segment: segment, includeValue: includeValues)
                    shapePath = segment
                }
                try RecordJSON.write(record, offset: offset, shape: shape, to: output)
            }, {
                try output.flush()
                // Saved only once the records it covers reached stdout: a crash
                // between the two prints them again on resume, never skips them.
                if let cursorFile, let current = cursor(), current != saved {
                    try FileSystem.writeAtomically(cursorFile) { try $0.writeAll(current.line) }
                    saved = current
                }
            })
        } catch let error as SystemError where error.errno == EPIPE {
            // The reader went away: a follower in a pipeline ends quietly.
        }
        return .success
    }

    /// Scans every segment; a damaged or unreadable one is reported and the
    /// next is scanned, and the status is the most severe seen.
    func run() throws -> ExitCode {
        if follow { return try runFollow() }
        let output = OutputBuffer(sink: .standardOutput)
        let recordBuffer = ByteBuffer()
        var worst = ExitCode.success
        func report(_ error: any Error) throws {
            try output.flush()
            let (message, status) = Failure.describe(error)
            tool.warn(message)
            if status.rawValue > worst.rawValue { worst = status }
        }
        // A store's segments are opened together, as one view of it; with
        // --count, its live bytes come from its index when that covers it.
        var readers: [(opened: Result<SegmentReader, any Error>, store: String?)] = []
        var liveBytes: [String: UInt64] = [:]
        for path in segments {
            if Store.isStore(path) {
                do {
                    let store = Store(path)
                    readers += try store.openSegments().map { (.success($0), path) }
                    if countOnly, let live = try StoreIndex.liveBytes(store, maxRecord: maxRecord) {
                        liveBytes.merge(live) { $1 }
                    }
                } catch {
                    readers.append((.failure(error), nil))
                }
            } else {
                readers.append((Result { try SegmentReader(path: path) }, nil))
            }
        }
        var storeTotal = ScanSummary()
        for (n, (opened, store)) in readers.enumerated() {
            let segment: SegmentReader
            switch opened {
            case .success(let reader): segment = reader
            case .failure(let error):
                try report(error)
                continue
            }
            let path = segment.path
            let shape = RecordJSON.Shape(segment: path, includeValue: includeValues)
            var summary = ScanSummary()
            do {
                if let at {
                    let record = try segment.record(at: at, maxRecord: maxRecord, verify: verify, buffer: recordBuffer)
                    try RecordJSON.write(record, offset: at, shape: shape, to: output)
                } else {
                    if segment.size == 0 { tool.warn("\(path): empty segment") }
                    if countOnly {
                        try segment.tally(from: from, maxRecord: maxRecord, verify: verify, progress: meter?.reporter(), into: &summary.tally)
                    } else {
                        try segment.scan(from: from, maxRecord: maxRecord, verify: verify) { record, offset in
                            try RecordJSON.write(record, offset: offset, shape: shape, to: output)
                        }
                    }
                }
            } catch {
                // A failed write to stdout fails again in report's flush, and ends the run.
                try report(error)
            }
            meter?.beforeOutput()
            if countOnly {
                let live = liveBytes[path]
                try output.append(summary.line(segment: path, liveBytes: live))
                if let store {
                    storeTotal.add(summary, liveBytes: live)
                    if n + 1 == readers.count || readers[n + 1].store != store {
                        try output.append(storeTotal.line(store: store))
                        storeTotal = ScanSummary()
                    }
                }
            }
            try output.flush()
        }
        return worst
    }
}

tool.main { try Scan($0).run() }

struct ScanSummary {
    var tally = RecordTally()
    /// For a store's total: how many segments, and their live bytes if the
    /// index gave them for every one.
    var segments = 0
    var liveBytes: UInt64? = 0

    mutating func add(_ segment: ScanSummary, liveBytes live: UInt64?) {
        tally.add(segment.tally)
        segments += 1
        liveBytes = live.flatMap { live in liveBytes.map { $0 + live } }
    }

    private var counts: String {
        "\"records\":\(tally.records),\"puts\":\(tally.puts),\"deletes\":\(tally.deletes),\"bytes\":\(tally.bytes)"
    }

    private func live(_ live: UInt64?) -> String {
        guard let live else { return "" }
        return ",\"live_bytes\":\(live),\"garbage_bytes\":\(tally.bytes >= live ? tally.bytes - live : 0)"
    }

    func line(segment: String, liveBytes: UInt64? = nil) -> String {
        "{\"segment\":\(String(decoding: JSONText.quoted(segment), as: UTF8.self)),\(counts)\(live(liveBytes))}\n"
    }

    func line(store: String) -> String {
        "{\"store\":\(String(decoding: JSONText.quoted(store), as: UTF8.self)),\"segments\":\(segments),\(counts)\(live(liveBytes))}\n"
    }
}
