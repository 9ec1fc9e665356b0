import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
import Glibc

let tool = Tool(ToolSpec(
    name: "logpack",
    synopsis: ["[options] SEG > OUT", "--in-place [--index INDEX] [options] SEG", "[--min-garbage FRACTION] DIR"],
    about: """
        Compact a segment: keep the latest PUT of each key, in original order; drop
        overwritten records and tombstones. Every record is verified first: a damaged
        segment is refused (run logfix), so damage is never carried forward.

        With --in-place the compacted segment is written to SEG.compacting and
        fsynced, then, under the writers' lock (SEG.lock), the records appended
        meanwhile are copied over, SEG.compacting is renamed over SEG and the
        directory fsynced. Writers keep appending throughout; a crash at any point
        leaves the old or the new segment, complete. The new segment keeps the old
        one's mode, owner and group; a SEG named through a symlink is its target.
        --index rewrites the index for the new segment (record addresses change).

        Given a store DIR, logpack merges its closed segments (all but the highest,
        the active one, which is never touched, so writers never wait) into one
        segment holding the newest record of each key in the original order: a
        tombstone is kept only while an older PUT it hides is among them, and the
        next merge drops it. The merged segment is fsynced and renamed over the
        highest closed one, then the others are removed; a crash at any point
        leaves every key answering as before or as after, and a scan never meets an
        older value of a key after a newer one. With --min-garbage, nothing is
        merged unless at least that fraction of the closed bytes is garbage. The
        report goes to stdout either way:

          {"store":"DIR","merged":true,"skipped":null,"closed_bytes":N,"live_bytes":N,
           "garbage_bytes":N,"garbage_fraction":F,"active":{"path":...,"size":N},...,
           "segments":[{"path":...,"size":N,"live_bytes":N,"garbage_bytes":N}],
           "output":{"path":...,"size":N},"removed":[...],"duration_ms":N}

        The report for a segment, on stdout with --in-place and on stderr otherwise:

          {"before_size":N,"after_size":N,"records_read":N,"records_written":N,
           "dropped_tombstones":N,"dropped_overwritten":N,"appended_meanwhile":N,
           "duration_ms":N}
        """,
    options: [
        Option(["--in-place"], nil, "replace SEG with its compacted form, safely, while writers append"),
        Option(["--index"], "INDEX", "with --in-place: rewrite INDEX for the compacted segment", completion: .file),
        Option(["--min-garbage"], "FRACTION", "with DIR: merge only if at least FRACTION (0 to 1) of the closed segments' bytes is garbage"),
        Option(["--report"], "FILE", "also write the report to FILE", completion: .file),
        Option.maxRecord,
        Option.progress,
    ],
    operands: .file,
    exitStatus: """
        0 compacted (or, for a store, nothing worth merging); 1 a segment is damaged \
        (nothing changed); 2 usage or I/O error, or another compaction of SEG or \
        merge of DIR is running.
        """,
    examples: [
        "logpack data",
        "logpack --min-garbage 0.3 data && logidx -o data/index.json data",
        "logpack one.seg > compacted.seg",
        "logpack --in-place --index one.json one.seg",
        "make compact",
    ]))

struct Pack {
    let path: String
    let inPlace: Bool
    let indexPath: String?
    let reportPath: String?
    let maxRecord: Int
    let minGarbage: Double
    let meter: Progress

    init(_ arguments: ParsedArguments) throws(UsageError) {
        path = try arguments.onlySegment()
        inPlace = arguments.has("--in-place")
        indexPath = try arguments.path("--index")
        reportPath = try arguments.path("--report")
        maxRecord = try arguments.maxRecord()
        if let text = arguments.string("--min-garbage") {
            guard let value = Double(text), value >= 0, value <= 1 else {
                throw UsageError("option --min-garbage: '\(text)' is not a fraction from 0 to 1")
            }
            minGarbage = value
        } else {
            minGarbage = 0
        }
        if Store.isStore(path) {
            if inPlace || indexPath != nil { throw UsageError("--in-place and --index take a segment; a store is merged in place: logpack \(path)") }
        } else if arguments.has("--min-garbage") {
            throw UsageError("--min-garbage is used with a store (a directory)")
        }
        meter = Progress(tool, arguments, files: Store.isStore(path) ? ((try? Store(path).segments().map(\.path)) ?? []) : [path])
        if indexPath != nil && !inPlace { throw UsageError("--index is used with --in-place") }
    }

    func run() throws -> ExitCode {
        if Store.isStore(path) { return try merge() }
        if inPlace { try Store.refuseStoreSegment(path, use: "merge the store instead (logpack \(FileSystem.directory(of: path)))") }
        for (option, output) in [("--report", reportPath), ("--index", indexPath)] {
            if let output { try FileSystem.requireDistinct(output, from: path, option: option) }
        }
        // Every output path is checked before the segment is replaced, and once
        // it is, the report is printed first: nothing after the swap can hide it.
        for output in [indexPath, reportPath].compactMap({ $0 }) { try FileSystem.requireWritableOutput(output) }
        // The index is rebuilt from the segments it lists: it must read as one now.
        if let indexPath, FileSystem.exists(indexPath) { _ = try IndexFile(path: indexPath) }
        let report: CompactionReport
        if inPlace {
            report = try Compaction.inPlace(path, maxRecord: maxRecord, progress: meter.reporter())
        } else {
            try FileSystem.requireSegment(path)
            tool.refuseTerminal(.standardOutput, hint: "redirect stdout to a file, or use --in-place")
            if try FileDescriptor.standardOutput.identity() == FileSystem.identity(of: path) {
                throw PathRefused(message: "\(path): stdout is the segment itself; refusing to overwrite it")
            }
            report = try toStandardOutput()
        }
        meter.finish()
        let line = report.json
        try (inPlace ? FileDescriptor.standardOutput : FileDescriptor.standardError).writeAll(line)
        if let indexPath { try IndexBuilder.rebuild(indexPath, including: path, maxRecord: maxRecord) }
        if let reportPath { try FileSystem.writeAtomically(reportPath) { try $0.writeAll(line) } }
        return .success
    }

    func merge() throws -> ExitCode {
        if let reportPath { try FileSystem.requireWritableOutput(reportPath) }
        let report = try StoreMerge.merge(Store(path), minGarbage: minGarbage, maxRecord: maxRecord)
        let line = report.json
        try FileDescriptor.standardOutput.writeAll(line)
        if let reportPath { try FileSystem.writeAtomically(reportPath) { try $0.writeAll(line) } }
        return .success
    }

    func toStandardOutput() throws -> CompactionReport {
        let started = monotonicMicroseconds()
        let source = try FileDescriptor.openSegment(path, O_RDONLY)
        defer { source.close() }
        let out = OutputBuffer(sink: .standardOutput, capacity: 4 << 20)
        var report = try MappedFile(source).withBytes { try Compaction.writeLive($0, path: path, maxRecord: maxRecord, to: out, progress: meter.reporter()) }
        try out.flush()
        report.durationMicroseconds = monotonicMicroseconds() - started
        return report
    }
}

tool.main { try Pack($0).run() }
