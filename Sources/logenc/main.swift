import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
#if canImport(Glibc)
import Glibc
#endif

let tool = Tool(name: "logenc", usage: """
    usage: logenc [options] < records.jsonl > records.seg
           logenc [options] KEY VALUE > record.seg
           logenc [options] -d KEY > record.seg
           logenc -a SEG [options] [KEY VALUE | -d KEY] [< records.jsonl]

    Encode records as binary logkit records: JSON lines from stdin, one record per
    line, or a single PUT or DELETE given as arguments. The records go to stdout,
    or with -a are appended to the segment SEG, and then each appended record's
    address is printed as a JSON line:

      {"segment":"SEG","offset":35,"length":32,"type":"delete","key":"name",
       "timestamp":1700000000001,"checksum":"0x2b7e11b5"}

    Input lines look like {"key":"k","value":"v"}, {"key":"k","value_b64":"AAE="}
    or {"key":"k","type":"delete"}, with an optional "timestamp" (milliseconds
    since the Unix epoch). Other fields, such as the "offset" and "checksum" of
    scan output, are ignored; blank lines are skipped.

    options:
      -a, --append SEG    append to segment SEG (created, with its directory, if
                          missing) under the writers' lock SEG.lock
      --sync MODE         with -a: when to fsync. batch (default): before a batch's
                          addresses are printed and before waiting for more input;
                          each: after every record; none: leave it to the kernel
      -d KEY              encode a DELETE (tombstone) of KEY
      --timestamp MS      timestamp of records that carry none (default: now)
      --max-record BYTES  refuse records longer than BYTES (default 64M; K, M, G)
      -h, --help          show this help and exit

    With --sync batch or each, a printed address is a record on disk. A failed
    append (disk full, file-size limit, I/O error) truncates the segment back to
    its last whole record, prints the addresses of the records that made it, and
    exits 2.

    exit status: 0 done; 1 a malformed input line (the records before it are
    written and reported, nothing after it); 2 usage, I/O or write error.

    examples:
      logenc user-1 alice > one.seg
      printf '{"key":"name","value":"ish"}\\n' | logenc | logdec
      logdec < a.seg | logenc > b.seg        # rebuilds a.seg byte for byte
      logenc -a data/segment-0001.dat name ish
      logenc -a data/segment-0001.dat --sync none < bulk.jsonl > addresses.jsonl

    """)

var arguments = Arguments(tool: tool)
var deleteKey: [UInt8]?
var fixedTimestamp: UInt64?
var maxRecord = RecordLayout.defaultMaxRecord
var positionals: [[UInt8]] = []
var segmentPath: String?
var syncMode = SyncMode.batch

while let argument = arguments.next() {
    switch argument {
    case .option("-h"), .option("--help"):
        arguments.help()
    case .option("-a"), .option("--append"):
        segmentPath = arguments.value(for: "-a")
    case .option("--sync"):
        let text = arguments.value(for: "--sync")
        guard let mode = SyncMode(rawValue: text) else {
            tool.usageError("option --sync: '\(text)' is not none, batch or each")
        }
        syncMode = mode
    case .option("-d"), .option("--delete"):
        deleteKey = arguments.rawValue(for: "-d")
    case .option("--timestamp"):
        fixedTimestamp = arguments.unsignedValue(for: "--timestamp")
    case .option("--max-record"):
        maxRecord = arguments.byteCount(for: "--max-record", range: Tool.maxRecordRange)
    case .positional(_, let bytes):
        positionals.append(bytes)
    case .option(let option):
        arguments.unknown(option)
    }
}

/// The one record given as arguments, if any, encoded.
let single: [UInt8]?
switch (deleteKey, positionals.count) {
case (let key?, 0): single = encodeArgument(.delete, key, [])
case (nil, 2): single = encodeArgument(.put, positionals[0], positionals[1])
case (nil, 0): single = nil
case (.some, _): tool.usageError("-d KEY takes no other arguments")
case (nil, 1): tool.usageError("a put needs a KEY and a VALUE")
case (nil, _): tool.usageError("too many arguments")
}

@MainActor
func encodeArgument(_ type: RecordType, _ key: [UInt8], _ value: [UInt8]) -> [UInt8] {
    guard !key.isEmpty else { tool.usageError("the key is empty") }
    guard key.withUnsafeBytes({ UTF8Validation.isValid($0) }) else { tool.usageError("the key is not valid UTF-8") }
    let length = Record.length(keyLength: key.count, valueLength: value.count)
    guard length <= maxRecord else {
        tool.usageError(RecordError.tooLarge(length: UInt64(length), limit: maxRecord).reason)
    }
    return Record.encode(type: type, key: key, value: value, timestamp: fixedTimestamp ?? currentTimeMillis())
}

if segmentPath == "" { tool.usageError("option -a needs a segment path") }

let encoder = RecordEncoder(maxRecord: maxRecord, fixedTimestamp: fixedTimestamp)
let sink: RecordSink
if let segmentPath {
    do {
        sink = try SegmentSink(path: segmentPath, sync: syncMode, maxRecord: maxRecord) { tool.warn($0) }
    } catch {
        tool.fail(error)
    }
} else {
    tool.refuseTerminal(.standardOutput, hint: "redirect stdout to a file or a pipe, or append with -a SEG")
    sink = StreamSink()
}
let batch = ByteBuffer(capacity: 1 << 20)

do {
    if let single {
        single.withUnsafeBytes { batch.append($0.baseAddress!, $0.count) }
    } else {
        try encoder.encodeLines(from: .standardInput, into: batch) {
            let idle = !FileDescriptor.standardInput.hasInputReady
            if idle || batch.count >= sink.batchLimit { try sink.write(batch, idle: idle) }
        }
    }
    try sink.write(batch, idle: true)
} catch let error as InputLineError {
    do { try sink.write(batch, idle: true) } catch { tool.fail(error) }
    tool.fail(error)
} catch {
    tool.fail(error)
}

