import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
#if canImport(Glibc)
import Glibc
#endif

let tool = Tool(name: "logdec", usage: """
    usage: logdec [options] < records.seg > records.jsonl
           logdec --format

    Decode a stream of binary logkit records from stdin into JSON lines, one per
    record, verifying each record's structure and checksum:

      {"offset":0,"length":35,"type":"put","key":"name","value":"ish",
       "timestamp":1700000000000,"checksum":"0xcff8f08d"}

    A value that is not UTF-8 is printed as "value_b64" (base64); a delete has no
    value. At the first damaged record the records before it have been printed,
    then "logdec: offset N: REASON" goes to stderr and the exit status is 1.

    options:
      --no-verify         skip checksum and key UTF-8 checks (structure is still
                          checked; a key that is not UTF-8 prints with U+FFFD)
      --max-record BYTES  refuse records longer than BYTES (default 64M; K, M, G)
      --format            print the record layout table and exit
      -h, --help          show this help and exit

    exit status: 0 every record valid; 1 damage found; 2 usage or I/O error.

    examples:
      logdec < data/segment-0001.dat | jq -r .key
      logenc user-1 alice | logdec
      logdec --format

    """)

var arguments = Arguments(tool: tool)
var verify = true
var maxRecord = RecordLayout.defaultMaxRecord
var showFormat = false

while let argument = arguments.next() {
    switch argument {
    case .option("-h"), .option("--help"):
        arguments.help()
    case .option("--format"):
        arguments.flag()
        showFormat = true
    case .option("--no-verify"):
        verify = false
    case .option("--max-record"):
        maxRecord = arguments.byteCount(for: "--max-record", range: Tool.maxRecordRange)
    case .positional(let text, _):
        tool.usageError("unexpected argument '\(text)' (logdec reads stdin; logscan reads files)")
    case .option(let option):
        arguments.unknown(option)
    }
}

if showFormat { tool.print(RecordLayout.table()) }

let output = OutputBuffer(sink: .standardOutput)
let reader = RecordReader(source: .standardInput, maxRecord: maxRecord, verify: verify)
let shape = RecordJSON.Shape(segment: nil, includeValue: true)

do {
    try reader.forEach { record, offset in
        try RecordJSON.write(record, offset: offset, shape: shape, to: output)
    }
    try output.flush()
} catch let fault as RecordFault {
    do { try output.flush() } catch { tool.fail(error.message, .usage) }
    tool.fail(fault.message, .dataRejected)
} catch let error as SystemError {
    tool.fail(error.message, .usage)
} catch {
    tool.fail("\(error)", .usage)
}
