import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI

let tool = Tool(ToolSpec(
    name: "logscan",
    synopsis: ["[options] SEG...", "--at OFFSET SEG", "--count SEG..."],
    about: """
        Scan segment files from the start (or --from OFFSET), verify every record's
        structure and checksum, and print each record as a JSON line:

          {"segment":"SEG","offset":0,"length":35,"type":"put","key":"name",
           "value":"ish","timestamp":1700000000000,"checksum":"0xcff8f08d"}

        At the first damaged record of a segment, the records before it have been
        printed, then "logscan: SEG: offset N: REASON" goes to stderr; the other
        segments are still scanned and the exit status is 1. An empty segment is
        noted on stderr and is not an error.
        """,
    options: [
        Option(["--at"], "OFFSET",
               "print only the record at address OFFSET (as printed by logenc -a), read with two positioned reads"),
        Option(["--from"], "OFFSET", "start the scan at OFFSET, which must be a record address"),
        Option(["--count"], nil,
               "print one summary line per segment instead of records: {\"segment\":\"SEG\",\"records\":N,\"puts\":N,\"deletes\":N,\"bytes\":N}"),
        Option(["--no-values"], nil, "leave out \"value\" and \"value_b64\""),
        Option(["--no-verify"], nil, "skip checksum and key UTF-8 checks (structure is still checked)"),
        Option.maxRecord,
    ],
    operands: .file,
    exitStatus: """
        0 every record valid; 1 damage found, or OFFSET is not in the segment; 2 usage \
        error, or a segment that cannot be read.
        """,
    examples: [
        "logscan data/segment-0001.dat | jq -r 'select(.type == \"put\") | .key'",
        "logscan --count data/segment-0001.dat",
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

    init(_ arguments: ParsedArguments) throws(UsageError) {
        segments = arguments.positionalStrings
        at = try arguments.unsigned("--at")
        from = try arguments.unsigned("--from") ?? 0
        countOnly = arguments.has("--count")
        includeValues = !arguments.has("--no-values")
        verify = !arguments.has("--no-verify")
        maxRecord = try arguments.maxRecord()
        if segments.isEmpty { throw UsageError("no segment given") }
        if at != nil {
            if segments.count > 1 { throw UsageError("--at reads one segment") }
            if countOnly || arguments.has("--from") { throw UsageError("--at cannot be combined with --count or --from") }
        }
    }

    /// Scans every segment; a damaged or unreadable one is reported and the
    /// next is scanned, and the status is the most severe seen.
    func run() throws -> ExitCode {
        let output = OutputBuffer(sink: .standardOutput)
        let recordBuffer = ByteBuffer()
        var worst = ExitCode.success
        func report(_ error: any Error) throws {
            try output.flush()
            let (message, status) = Failure.describe(error)
            tool.warn(message)
            if status.rawValue > worst.rawValue { worst = status }
        }
        for path in segments {
            let shape = RecordJSON.Shape(segment: path, includeValue: includeValues)
            var summary = ScanSummary()
            let segment: SegmentReader
            do {
                segment = try SegmentReader(path: path)
            } catch {
                try report(error)
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
                // A failed write to stdout fails again in report's flush, and ends the run.
                try report(error)
            }
            if countOnly { try output.append(summary.line(segment: path)) }
            try output.flush()
        }
        return worst
    }
}

tool.main { try Scan($0).run() }

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
