import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
#if canImport(Glibc)
import Glibc
#endif

let tool = Tool(name: "logscan", usage: """
    usage: logscan [options] SEG...
           logscan --at OFFSET SEG
           logscan --count SEG...

    Scan segment files from the start (or --from OFFSET), verify every record's
    structure and checksum, and print each record as a JSON line:

      {"segment":"SEG","offset":0,"length":35,"type":"put","key":"name",
       "value":"ish","timestamp":1700000000000,"checksum":"0xcff8f08d"}

    At the first damaged record of a segment, the records before it have been
    printed, then "logscan: SEG: offset N: REASON" goes to stderr; the other
    segments are still scanned and the exit status is 1. An empty segment is
    noted on stderr and is not an error.

    options:
      --at OFFSET         print only the record at address OFFSET (as printed by
                          logenc -a), read with two positioned reads
      --from OFFSET       start the scan at OFFSET, which must be a record address
      --count             print one summary line per segment instead of records:
                          {"segment":"SEG","records":N,"puts":N,"deletes":N,"bytes":N}
      --no-values         leave out "value" and "value_b64"
      --no-verify         skip checksum and key UTF-8 checks (structure is still checked)
      --max-record BYTES  refuse records longer than BYTES (default 64M; K, M, G)
      -h, --help          show this help and exit

    exit status: 0 every record valid; 1 damage found, or OFFSET is not in the
    segment; 2 usage error, or a segment that cannot be read.

    examples:
      logscan data/segment-0001.dat | jq -r 'select(.type == "put") | .key'
      logscan --count data/segment-0001.dat
      logscan --at 35 data/segment-0001.dat
      logscan --no-values data/segment-0001.dat | logidx > data/index.json

    """)

var arguments = Arguments(tool: tool)
var at: UInt64?
var from: UInt64 = 0
var fromGiven = false
var countOnly = false
var includeValues = true
var verify = true
var maxRecord = RecordLayout.defaultMaxRecord
var segments: [String] = []

while let argument = arguments.next() {
    switch argument {
    case .option("-h"), .option("--help"):
        arguments.help()
    case .option("--at"):
        at = arguments.unsignedValue(for: "--at")
    case .option("--from"):
        from = arguments.unsignedValue(for: "--from")
        fromGiven = true
    case .option("--count"):
        arguments.flag()
        countOnly = true
    case .option("--no-values"):
        arguments.flag()
        includeValues = false
    case .option("--no-verify"):
        arguments.flag()
        verify = false
    case .option("--max-record"):
        maxRecord = arguments.byteCount(for: "--max-record", range: Tool.maxRecordRange)
    case .positional(let path, _):
        segments.append(path)
    case .option(let option):
        arguments.unknown(option)
    }
}

if segments.isEmpty { tool.usageError("no segment given") }
if at != nil {
    if segments.count > 1 { tool.usageError("--at reads one segment") }
    if countOnly || fromGiven { tool.usageError("--at cannot be combined with --count or --from") }
}

let output = OutputBuffer(sink: .standardOutput)
let recordBuffer = ByteBuffer()
var worst = ExitCode.success

/// Reports an error and remembers the most severe exit code; the scan goes on
/// with the next segment.
@MainActor
func report(_ error: any Error) {
    do { try output.flush() } catch { tool.fail(error) }
    let (message, code) = Failure.describe(error)
    tool.warn(message)
    if code.rawValue > worst.rawValue { worst = code }
}


for path in segments {
    let shape = RecordJSON.Shape(segment: path, includeValue: includeValues)
    var summary = ScanSummary()
    let segment: SegmentReader
    do {
        segment = try SegmentReader(path: path)
    } catch {
        report(error)
        continue
    }
    do {
        if let at {
            let record = try segment.record(at: at, maxRecord: maxRecord, verify: verify, buffer: recordBuffer)
            try RecordJSON.write(record, offset: at, shape: shape, to: output)
        } else {
            if segment.size == 0 { tool.warn("\(path): empty segment") }
            if countOnly {
                try segment.scan(from: from, maxRecord: maxRecord, verify: verify) { record, _ in summary.add(record) }
            } else {
                try segment.scan(from: from, maxRecord: maxRecord, verify: verify) { record, offset in
                    try RecordJSON.write(record, offset: offset, shape: shape, to: output)
                }
            }
        }
    } catch {
        report(error)
    }
    if countOnly {
        do { try output.append(summary.line(segment: path)) } catch { report(error) }
    }
    do { try output.flush() } catch { tool.fail(error) }
}
exit(worst.rawValue)

struct ScanSummary {
    var records = 0
    var puts = 0
    var deletes = 0
    var bytes: UInt64 = 0

    mutating func add(_ record: RecordView) {
        records += 1
        if record.type == .put { puts += 1 } else { deletes += 1 }
        bytes += UInt64(record.length)
    }

    func line(segment: String) -> String {
        let name = String(decoding: JSONText.quoted(segment), as: UTF8.self)
        return "{\"segment\":\(name),\"records\":\(records),\"puts\":\(puts),\"deletes\":\(deletes),\"bytes\":\(bytes)}\n"
    }
}
