import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
#if canImport(Glibc)
import Glibc
#endif

let tool = Tool(name: "logpack", usage: """
    usage: logpack [options] SEG > OUT
           logpack --in-place [--index INDEX] [options] SEG

    Compact a segment: keep the latest PUT of each key, in original order; drop
    overwritten records and tombstones. Every record is verified first: a damaged
    segment is refused (run logfix), so damage is never carried forward.

    With --in-place the compacted segment is written to SEG.compacting and
    fsynced, then, under the writers' lock (SEG.lock), the records appended
    meanwhile are copied over, SEG.compacting is renamed over SEG and the
    directory fsynced. Writers keep appending throughout; a crash at any point
    leaves the old or the new segment, complete. --index rewrites the index for
    the new segment (record addresses change).

    The report, on stdout with --in-place and on stderr otherwise:

      {"before_size":N,"after_size":N,"records_read":N,"records_written":N,
       "dropped_tombstones":N,"dropped_overwritten":N,"appended_meanwhile":N,
       "duration_ms":N}

    options:
      --in-place          replace SEG with its compacted form, safely, while writers append
      --index INDEX       with --in-place: rewrite INDEX for the compacted segment
      --report FILE       also write the report to FILE
      --max-record BYTES  refuse records longer than BYTES (default 64M; K, M, G)
      -h, --help          show this help and exit

    exit status: 0 compacted; 1 the segment is damaged (nothing written); 2 usage
    or I/O error, or another compaction of SEG is running.

    examples:
      logpack data/segment-0001.dat > data/compacted.dat
      logpack --in-place --index data/index.json data/segment-0001.dat
      make compact

    """)

var arguments = Arguments(tool: tool)
var inPlace = false
var indexPath: String?
var reportPath: String?
var maxRecord = RecordLayout.defaultMaxRecord
var segments: [String] = []

while let argument = arguments.next() {
    switch argument {
    case .option("-h"), .option("--help"): arguments.help()
    case .option("--in-place"): arguments.flag(); inPlace = true
    case .option("--index"): indexPath = arguments.value(for: "--index")
    case .option("--report"): reportPath = arguments.value(for: "--report")
    case .option("--max-record"): maxRecord = arguments.byteCount(for: "--max-record", range: Tool.maxRecordRange)
    case .positional(let path, _): segments.append(path)
    case .option(let option): arguments.unknown(option)
    }
}

guard segments.count == 1, let path = segments.first else { tool.usageError(segments.isEmpty ? "no segment given" : "exactly one segment is taken, not \(segments.count)") }
if indexPath != nil && !inPlace { tool.usageError("--index is used with --in-place") }

do {
    for (option, output) in [("--report", reportPath), ("--index", indexPath)] {
        if let output { try FileSystem.requireDistinct(output, from: path, option: option) }
    }
    // Every output path is checked before the segment is replaced, and once
    // it is, the report is printed first: nothing after the swap can hide it.
    for output in [indexPath, reportPath].compactMap({ $0 }) { try FileSystem.requireWritableOutput(output) }
    let report: CompactionReport
    if inPlace {
        report = try Compaction.inPlace(path, maxRecord: maxRecord)
    } else {
        try FileSystem.requireSegment(path)
        tool.refuseTerminal(.standardOutput, hint: "redirect stdout to a file, or use --in-place")
        if try FileDescriptor.standardOutput.identity() == FileSystem.identity(of: path) {
            throw PathRefused(message: "\(path): stdout is the segment itself; refusing to overwrite it")
        }
        report = try toStandardOutput()
    }
    let line = report.json
    try (inPlace ? FileDescriptor.standardOutput : FileDescriptor.standardError).writeAll(line)
    if let indexPath { try IndexBuilder.rebuild(indexPath, including: path, maxRecord: maxRecord) }
    if let reportPath { try FileSystem.writeAtomically(reportPath) { try $0.writeAll(line) } }
} catch {
    tool.fail(error)
}

@MainActor
func toStandardOutput() throws -> CompactionReport {
    let started = monotonicMicroseconds()
    let source = try FileDescriptor.openSegment(path, O_RDONLY)
    defer { source.close() }
    let out = OutputBuffer(sink: .standardOutput, capacity: 4 << 20)
    var report = try MappedFile(source).withBytes { try Compaction.writeLive($0, path: path, maxRecord: maxRecord, to: out) }
    try out.flush()
    report.durationMicroseconds = monotonicMicroseconds() - started
    return report
}
