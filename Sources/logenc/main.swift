import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI

let tool = Tool(ToolSpec(
    name: "logenc",
    synopsis: [
        "[options] < records.jsonl > records.seg",
        "[options] KEY VALUE > record.seg",
        "[options] -d KEY > record.seg",
        "-a SEG|DIR [options] [KEY VALUE | -d KEY] [< records.jsonl]",
    ],
    about: """
        Encode records as binary logkit records: JSON lines from stdin, one record per
        line, or a single PUT or DELETE given as arguments. The records go to stdout,
        or with -a are appended to the segment SEG or the store DIR, and then each
        appended record's address is printed as a JSON line:

          {"segment":"SEG","offset":35,"length":32,"type":"delete","key":"name",
           "timestamp":1700000000001,"checksum":"0x2b7e11b5"}

        Input lines look like {"key":"k","value":"v"}, {"key":"k","value_b64":"AAE="}
        or {"key":"k","type":"delete"}, with an optional "timestamp" (milliseconds
        since the Unix epoch). Other fields, such as the "offset" and "checksum" of
        scan output, are ignored; blank lines are skipped.

        A store is a directory of segments segment-0001.dat, segment-0002.dat, ...
        (an existing directory, or a path ending in /, which is created). Records go
        to its highest segment; a batch that would take it past --segment-size
        starts the next segment first (the full one is fsynced before), and a batch
        larger than the size gets a segment of its own. A batch never spans two
        segments; each address names the segment it went to.

        Before its first append a writer checks the part of SEG no writer has
        verified (usually nothing): a torn tail left by a crash is truncated, with a
        note on stderr; damage followed by valid records is refused (exit 1; run
        logfix). With --sync batch or each, a printed address is a record on disk. A
        failed append (disk full, file-size limit, I/O error) truncates the segment
        back to its last whole record, prints the addresses of the records that made
        it, and exits 2; a failed fsync is never retried, and no address is printed
        for the records it covered.
        """,
    options: [
        Option(["-a", "--append"], "SEG|DIR",
               "append to segment SEG (created, with its directory, if missing) under the writers' lock SEG.lock, or to the store DIR under DIR/LOCK",
               completion: .file),
        Option(["--segment-size"], "BYTES",
               "with -a DIR: the size at which a new segment is started (K, M or G suffix; default 64M)"),
        Option(["--sync"], "MODE",
               "with -a: when to fsync. batch (default): before a batch's addresses are printed and before waiting for more input; each: after every record; none: leave it to the kernel",
               completion: .words(["none", "batch", "each"])),
        Option(["--atomic"], nil,
               "the input is one batch, all or nothing: its records carry the continues flag but the last; a line {\"type\":\"commit\"} ends a batch and starts the next. With -a, each batch is appended under one hold of the lock, and its addresses are printed once it is committed (and synced per --sync); a malformed line appends nothing of its batch"),
        Option(["-d", "--delete"], "KEY", "encode a DELETE (tombstone) of KEY"),
        Option(["--timestamp"], "MS", "timestamp of records that carry none (default: now)"),
        Option.maxRecord,
        Option.progress,
    ],
    exitStatus: """
        0 done; 1 a malformed input line (the records before it are written and \
        reported, nothing after it), or damage in the segment's tail; 2 usage, I/O or \
        write error.
        """,
    examples: [
        "logenc user-1 alice > one.seg",
        "printf '{\"key\":\"name\",\"value\":\"ish\"}\\n' | logenc | logdec",
        "logdec < a.seg | logenc > b.seg        # rebuilds a.seg byte for byte",
        "logenc -a data/ name ish             # a path ending in / is a store, created if missing",
        "logenc -a data --sync none --segment-size 64M < records.jsonl > addresses.jsonl",
        "logenc -a one.seg name ish",
    ]))

struct Encode {
    let segmentPath: String?
    let segmentSize: UInt64?
    let sync: SyncMode
    let atomic: Bool
    let maxRecord: Int
    let fixedTimestamp: UInt64?
    /// The one record given as arguments, if any, encoded.
    let single: [UInt8]?
    let meter: Progress

    init(_ arguments: ParsedArguments) throws(UsageError) {
        segmentPath = try arguments.path("--append")
        segmentSize = try arguments.byteCount("--segment-size", range: 1...(UInt64(1) << 62)).map(UInt64.init)
        if segmentSize != nil && segmentPath == nil { throw UsageError("--segment-size is used with -a DIR") }
        let syncText = arguments.string("--sync") ?? SyncMode.batch.rawValue
        guard let sync = SyncMode(rawValue: syncText) else {
            throw UsageError("option --sync: '\(syncText)' is not none, batch or each")
        }
        self.sync = sync
        atomic = arguments.has("--atomic")
        maxRecord = try arguments.maxRecord()
        fixedTimestamp = try arguments.unsigned("--timestamp")
        meter = Progress(tool, arguments, reading: .standardInput)
        let positionals = arguments.positionals
        switch (arguments.bytes("--delete"), positionals.count) {
        case (let key?, 0): single = try Encode.record(.delete, key, [], maxRecord: maxRecord, timestamp: fixedTimestamp)
        case (nil, 2): single = try Encode.record(.put, positionals[0], positionals[1], maxRecord: maxRecord, timestamp: fixedTimestamp)
        case (nil, 0): single = nil
        case (.some, _): throw UsageError("-d KEY takes no other arguments")
        case (nil, 1): throw UsageError("a put needs a KEY and a VALUE")
        case (nil, _): throw UsageError("too many arguments")
        }
    }

    static func record(_ type: RecordType, _ key: [UInt8], _ value: [UInt8], maxRecord: Int, timestamp: UInt64?) throws(UsageError) -> [UInt8] {
        guard !key.isEmpty else { throw UsageError("the key is empty") }
        guard key.withUnsafeBytes({ UTF8Validation.isValid($0) }) else { throw UsageError("the key is not valid UTF-8") }
        let length = Record.length(keyLength: key.count, valueLength: value.count)
        guard length <= maxRecord else { throw UsageError(RecordError.tooLarge(length: UInt64(length), limit: maxRecord).reason) }
        return Record.encode(type: type, key: key, value: value, timestamp: timestamp ?? currentTimeMillis())
    }

    func run() throws -> ExitCode {
        let sink: RecordSink
        if let segmentPath {
            let appender: SegmentAppender
            if Store.isStore(segmentPath) || segmentPath.hasSuffix("/") {
                appender = try SegmentAppender(store: Store(segmentPath), segmentSize: segmentSize ?? Store.defaultSegmentSize)
            } else {
                if segmentSize != nil { throw UsageError("--segment-size is used with a store (a directory), not a segment") }
                appender = try SegmentAppender(path: segmentPath)
            }
            appender.notice = { tool.warn($0) }
            sink = SegmentSink(appender: appender, sync: sync, atomic: atomic, beforeOutput: meter.beforeOutput)
        } else {
            tool.refuseTerminal(.standardOutput, hint: "redirect stdout to a file or a pipe, or append with -a SEG")
            sink = StreamSink()
        }
        let batch = ByteBuffer(capacity: 1 << 20)
        if let single {
            single.withUnsafeBytes { batch.append($0.baseAddress!, $0.count) }
        } else {
            let encoder = RecordEncoder(maxRecord: maxRecord, fixedTimestamp: fixedTimestamp, atomic: atomic)
            do {
                try encoder.encodeLines(from: .standardInput, into: batch, commit: {
                    try sink.write(batch, idle: true)
                }, afterChunk: {
                    // An atomic batch waits, whole, for its commit line or the end.
                    guard !atomic else { return }
                    let idle = !FileDescriptor.standardInput.hasInputReady
                    if idle || batch.count >= sink.batchLimit { try sink.write(batch, idle: idle) }
                }, progress: meter.reporter())
            } catch let error as InputLineError {
                // The lines before the bad one are written and reported; with
                // --atomic, only the batches committed before it.
                if !atomic { try sink.write(batch, idle: true) }
                throw error
            }
            encoder.closeBatch(in: batch)
        }
        try sink.write(batch, idle: true)
        return .success
    }
}

tool.main { try Encode($0).run() }
