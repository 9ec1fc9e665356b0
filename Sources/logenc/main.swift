import Common
#if canImport(Glibc)
import Glibc
#endif

let tool = Tool(name: "logenc", usage: """
    usage: logenc [options] < records.jsonl > records.seg
           logenc [options] KEY VALUE > record.seg
           logenc [options] -d KEY > record.seg

    Encode records as binary logkit records on stdout: JSON lines from stdin, one
    record per line, or a single PUT or DELETE given as arguments.

    Input lines look like {"key":"k","value":"v"}, {"key":"k","value_b64":"AAE="}
    or {"key":"k","type":"delete"}, with an optional "timestamp" (milliseconds
    since the Unix epoch). Other fields, such as the "offset" and "checksum" of
    scan output, are ignored; blank lines are skipped.

    options:
      -d KEY              encode a DELETE (tombstone) of KEY
      --timestamp MS      timestamp of records that carry none (default: now)
      --max-record BYTES  refuse records longer than BYTES (default 64M; K, M, G)
      -h, --help          show this help and exit

    exit status: 0 done; 1 a malformed input line (the records before it are
    written, nothing after it); 2 usage or I/O error.

    examples:
      logenc user-1 alice > one.seg
      printf '{"key":"name","value":"ish"}\\n' | logenc | logdec
      logdec < a.seg | logenc > b.seg        # rebuilds a.seg byte for byte

    """)

var arguments = Arguments(tool: tool)
var deleteKey: [UInt8]?
var fixedTimestamp: UInt64?
var maxRecord = RecordLayout.defaultMaxRecord
var positionals: [[UInt8]] = []

while let argument = arguments.next() {
    switch argument {
    case .option("-h"), .option("--help"):
        tool.printHelp()
    case .option("-d"), .option("--delete"):
        deleteKey = Array(arguments.value(for: "-d").utf8)
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

let single: (type: RecordType, key: [UInt8], value: [UInt8])?
switch (deleteKey, positionals.count) {
case (let key?, 0): single = (.delete, key, [])
case (nil, 2): single = (.put, positionals[0], positionals[1])
case (nil, 0): single = nil
case (.some, _): tool.usageError("-d KEY takes no other arguments")
case (nil, 1): tool.usageError("a put needs a KEY and a VALUE")
case (nil, _): tool.usageError("too many arguments")
}

tool.refuseTerminal(.standardOutput, hint: "redirect stdout to a file or a pipe")
let output = OutputBuffer(sink: .standardOutput)

if let (type, key, value) = single {
    guard !key.isEmpty else { tool.fail("empty key", .usage) }
    guard key.withUnsafeBytes({ UTF8Validation.isValid($0) }) else { tool.fail("key is not valid UTF-8", .usage) }
    let length = Record.length(keyLength: key.count, valueLength: value.count)
    guard length <= maxRecord else {
        tool.fail(RecordError.tooLarge(length: UInt64(length), limit: maxRecord).reason, .dataRejected)
    }
    let record = Record.encode(type: type, key: key, value: value, timestamp: fixedTimestamp ?? currentTimeMillis())
    do {
        try output.append(record)
        try output.flush()
    } catch {
        tool.fail(error.message, .usage)
    }
    exit(0)
}

let encoder = RecordEncoder(maxRecord: maxRecord, fixedTimestamp: fixedTimestamp)
do {
    try encoder.encodeLines(from: .standardInput, to: output)
    try output.flush()
} catch let error as InputLineError {
    do { try output.flush() } catch { tool.fail(error.message, .usage) }
    tool.fail(error.message, .dataRejected)
} catch let error as SystemError {
    tool.fail(error.message, .usage)
} catch {
    tool.fail("\(error)", .usage)
}
