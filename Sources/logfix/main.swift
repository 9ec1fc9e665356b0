import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
import Glibc

let tool = Tool(ToolSpec(
    name: "logfix",
    synopsis: ["[options] SEG", "--check SEG", "--salvage OUT SEG", "--index INDEX --from-index SEG", "[--check] [--full] DIR"],
    about: """
        Verify every record of a segment and repair what a crash can leave behind.
        A torn tail (damage with no valid record after it, such as a record cut short
        by a crash mid-append) is truncated to the end of the last valid record, and
        the file is fsynced. Damage followed by valid records is refused: nothing is
        changed, stderr names the damaged ranges and how many valid records follow,
        and the exit status is 1, unless --salvage copies every valid record into a
        new segment, or --force truncates at the first damage anyway. Damage below
        the end up to which writers verified the segment (kept in SEG.lock) is never
        taken for a torn tail.

        Given a store DIR, logfix takes DIR/LOCK and verifies its active segment from
        the end up to which writers verified it (the whole segment if that is not
        known), and with --full every closed segment as well. A torn tail can only be
        in the active segment: a segment is fsynced before the next one is started,
        so damage in a closed segment is always refused (exit 1) unless --force.
        There is one report line per segment verified.

        logfix holds the writers' lock (SEG.lock) while it works, so it never mistakes
        an append in progress for a torn tail, and removes a leftover SEG.compacting
        from a crashed compaction. A JSON report goes to stdout:

          {"segment":"SEG","original_size":N,"recovered_size":N,"lost_bytes":N,
           "failure_offset":N|null,"failure_reason":"..."|null,"valid_records":N,
           "action":"none|truncated|refused|forced|salvaged|checked",
           "verified_from":N,"records_after_damage":N,"damaged_ranges":[[START,END],...]}
        """,
    options: [
        Option(["--check"], nil,
               "report only; change nothing (exit 1 if damaged); needs only read permission. The report shows the sizes a repair would leave"),
        Option(["--salvage"], "OUT",
               "write every valid record, resynchronising past damage by magic and checksum, to the new segment OUT (atomically; always, also for a clean segment); SEG is left as it is",
               completion: .file),
        Option(["--force"], nil,
               "truncate at the first damage even though valid records follow it (they are lost; salvage them first)"),
        Option(["--index"], "INDEX", "with --from-index: the index of this segment", completion: .file),
        Option(["--from-index"], nil,
               "verify only what was appended after the index was written (after checking the index's last record is still there), so routine recovery costs the tail, not the file"),
        Option(["--full"], nil, "with a store DIR: verify every closed segment too, not only the active segment's tail"),
        Option(["--report"], "FILE", "also write the report to FILE", completion: .file),
        Option.maxRecord,
        Option.progress,
    ],
    operands: .file,
    exitStatus: """
        0 clean, or repaired (truncated, salvaged, forced); 1 damage found by \
        --check, or refused; 2 usage or I/O error.
        """,
    examples: [
        "logfix data",
        "logfix --check --full data || echo damaged",
        "logfix one.seg",
        "logfix --index data/index.json --from-index data/segment-0001.dat",
        "logfix --salvage data/rescued.dat data/segment-0001.dat",
    ]))

struct Fix {
    let path: String
    let check: Bool
    let force: Bool
    let fromIndex: Bool
    let salvagePath: String?
    let indexPath: String?
    let reportPath: String?
    let maxRecord: Int
    let full: Bool
    let meter: Progress

    init(_ arguments: ParsedArguments) throws(UsageError) {
        path = try arguments.onlySegment()
        check = arguments.has("--check")
        force = arguments.has("--force")
        fromIndex = arguments.has("--from-index")
        salvagePath = try arguments.path("--salvage")
        indexPath = try arguments.path("--index")
        reportPath = try arguments.path("--report")
        maxRecord = try arguments.maxRecord()
        full = arguments.has("--full")
        if Store.isStore(path) {
            if salvagePath != nil || fromIndex { throw UsageError("--salvage and --from-index take a segment, not a store") }
        } else if full {
            throw UsageError("--full is used with a store (a directory); a segment is always verified in full")
        }
        meter = Progress(tool, arguments, files: Store.isStore(path) ? ((try? Store(path).segments().map(\.path)) ?? []) : [path])
        if fromIndex && indexPath == nil { throw UsageError("--from-index needs --index INDEX") }
        if indexPath != nil && !fromIndex { throw UsageError("--index is used with --from-index") }
        if [check, force, salvagePath != nil].filter({ $0 }).count > 1 {
            throw UsageError("--check, --force and --salvage exclude each other")
        }
    }

    func run() throws -> ExitCode {
        for (option, output) in [("--report", reportPath), ("--salvage", salvagePath)] {
            if let output {
                try FileSystem.requireDistinct(output, from: path, option: option)
                try FileSystem.requireWritableOutput(output)
            }
        }
        if let salvagePath, FileSystem.isTerminal(salvagePath) {
            throw PathRefused(message: "\(salvagePath): refusing to write binary records to a terminal")
        }
        let reports = Store.isStore(path) ? try repairStore() : [try repair(path, lock: try segmentLock(), closed: false)]
        meter.finish()
        let line = reports.map(\.json).joined()
        // The report reaches stdout even if the report file cannot be written.
        try FileDescriptor.standardOutput.writeAll(line)
        if let reportPath { try FileSystem.writeAtomically(reportPath) { try $0.writeAll(line) } }
        return reports.map(\.exitCode).max { $0.rawValue < $1.rawValue } ?? .success
    }

    /// --check changes nothing, not even by creating the lock file, and needs
    /// only read permission: without a readable lock file it reads unlocked.
    func segmentLock() throws -> WritersLock? {
        try FileSystem.requireSegment(path)
        // --salvage only reads SEG, so it may read a segment of a store; it
        // must not create SEG.lock there, which would be a foreign file.
        let readOnly = check || salvagePath != nil && Store.containing(segment: path) != nil
        if !readOnly { try Store.refuseStoreSegment(path, use: "repair the store instead (logfix \(FileSystem.directory(of: path)))") }
        return readOnly ? try? WritersLock(segment: path, readOnly: true) : try WritersLock(segment: path)
    }

    /// The store's active segment from where writers verified it, and with
    /// --full every closed segment, all under the store's lock.
    func repairStore() throws -> [RepairReport] {
        let store = Store(path)
        // A repair of closed segments waits for a merge, which maps them and
        // must never see one cut short (a merge holds flock on the directory).
        let merges = full && !check ? try FileDescriptor.open(store.directory, O_RDONLY | O_DIRECTORY) : nil
        defer { merges?.close() }
        try merges?.lockExclusive()
        let lock: WritersLock? = check ? try? WritersLock(store: store, readOnly: true) : try WritersLock(store: store)
        try lock?.lock()
        defer { lock?.unlock() }
        let segments = try store.segments()
        guard let active = segments.last else {
            tool.warn("\(path): an empty store")
            return []
        }
        var reports: [RepairReport] = []
        if full {
            for segment in segments.dropLast() { reports.append(try repair(segment.path, lock: lock, closed: true, inStore: true)) }
        }
        reports.append(try repair(active.path, lock: lock, closed: false, inStore: true, fromVerifiedEnd: !full))
        return reports
    }

    /// Verifies and repairs one segment. `closed`: a closed segment of a
    /// store, which never holds a torn tail. `inStore`: the store's lock is
    /// held by the caller. `fromVerifiedEnd`: start where the lock says
    /// writers verified the segment.
    func repair(_ path: String, lock: WritersLock?, closed: Bool, inStore: Bool = false, fromVerifiedEnd: Bool = false) throws -> RepairReport {
        if !inStore { try lock?.lock() }
        defer { if !inStore { lock?.unlock() } }
        // Opened under the lock, so the path names the live segment, not one a
        // compaction has just renamed away.
        let file = try FileDescriptor.openSegment(path, check || salvagePath != nil ? O_RDONLY : O_RDWR)
        defer { file.close() }
        if !check && !inStore { try lock?.removeLeftoverCompaction() }

        let size = try file.size()
        let identity = try file.identity()
        var start = fromIndex ? try indexedEnd(of: file, size: size) : 0
        if fromVerifiedEnd, let known = lock?.verifiedEnd(), try known.holds(in: file, size: size) { start = known.end }
        let verification = try Recovery.verify(file, size: size, from: start, maxRecord: maxRecord, progress: meter.reporter())
        var report = RepairReport(segment: path, originalSize: size, verification: verification)
        // Records up to the end a writer wrote or verified (kept in SEG.lock) were
        // whole once: damage there is not a crash's torn tail, whatever follows.
        let verifiedEnd = lock?.verifiedEnd()
            .flatMap { $0.identity == identity && $0.end <= size ? $0.end : nil }
        let failedBelowVerified = verification.failure.map { $0.offset < (verifiedEnd ?? 0) } ?? false
        // A record longer than --max-record is a whole record that a smaller
        // limit refuses, never a crash's leftover: raise the limit, do not cut.
        let refusedByLimit = { if case .tooLarge = verification.failure?.error { true } else { false } }()
        let tornTail = verification.isTornTail && !failedBelowVerified && !refusedByLimit && !closed
        /// Leaves the next writer a verified end it can trust without reading
        /// the segment again (only when this run saw the last record).
        func record(_ state: VerifiedEnd) {
            if state.end == 0 || verification.lastValid != nil { try? lock?.recordVerifiedEnd(state) }
        }

        if let salvagePath {
            // OUT is always written, also for a clean segment: a script can rely on it.
            let kept = try MappedFile(file, size: size).withBytes { try salvage($0, to: salvagePath) }
            report.validRecords = kept.records
            return report.finish(.salvaged, recoveredSize: kept.bytes)
        }
        guard let failure = verification.failure else {
            if !check { record(VerifiedEnd(identity: identity, end: size, last: verification.lastValid)) }
            return report.finish(.none, recoveredSize: size)
        }
        let cut = verification.validEnd
        if check {
            return report.finish(.checked, recoveredSize: tornTail ? cut : size)
        }
        if tornTail || force {
            try file.truncate(to: cut)
            try file.sync()
            record(VerifiedEnd(identity: identity, end: cut, last: verification.lastValid))
            tool.warn("\(path): truncated at offset \(cut) (\(size - cut) bytes from offset \(failure.offset): \(failure.error.reason))")
            return report.finish(force && !tornTail ? .forced : .truncated, recoveredSize: cut)
        }
        if closed {
            tool.warn("\(path): \(failure.message); a closed segment of the store, fsynced when it was closed, so this is no torn tail; not truncating (use --force)")
            return report.finish(.refused, recoveredSize: size)
        }
        if refusedByLimit && verification.isTornTail {
            tool.warn("\(path): \(failure.message); not truncating a record the limit refuses (raise --max-record, or use --force)")
            return report.finish(.refused, recoveredSize: size)
        }
        if let verifiedEnd, failedBelowVerified && verification.isTornTail {
            tool.warn("\(path): \(failure.message); the damage lies below offset \(verifiedEnd), up to which the records were whole when written (\(inStore ? Store(self.path).lockPath : path + ".lock")); not truncating (use --salvage OUT or --force)")
            return report.finish(.refused, recoveredSize: size)
        }
        let ranges = verification.damaged.map { "\($0.start)-\($0.end)" }.joined(separator: ", ")
        tool.warn("\(path): \(failure.message); \(verification.recordsAfterDamage) valid records follow the damage (damaged bytes \(ranges)); not truncating (use --salvage OUT or --force)")
        return report.finish(.refused, recoveredSize: size)
    }

    /// Where verification can start for --from-index: the end the index
    /// recorded, if the index's last record of this segment is still there.
    func indexedEnd(of file: FileDescriptor, size: UInt64) throws -> UInt64 {
        let index = try IndexFile(path: indexPath!)
        let identity = try file.identity()
        for indexed in index.segments where try FileSystem.identity(of: indexed.path) == identity {
            guard indexed.size > 0 else { return 0 }
            if try indexed.mismatch(file, size: size, maxRecord: maxRecord, buffer: ByteBuffer()) == nil { return indexed.size }
            tool.warn("\(path): the index's last record of this segment is not there; verifying from offset 0")
            return 0
        }
        tool.warn("\(path): not in the index \(indexPath!); verifying from offset 0")
        return 0
    }

    func salvage(_ segment: UnsafeRawBufferPointer, to output: String) throws -> (records: Int, bytes: UInt64) {
        var records = 0
        var bytes: UInt64 = 0
        try FileSystem.writeAtomically(output) { file in
            let out = OutputBuffer(sink: file)
            var failure: SystemError?
            Recovery.walk(segment, from: 0, maxRecord: maxRecord) { event in
                guard failure == nil, case .record(let record, _) = event else { return }
                do throws(SystemError) {
                    try out.append(record.bytes)
                } catch {
                    failure = error
                }
                records += 1
                bytes += UInt64(record.length)
            }
            if let failure { throw failure }
            try out.flush()
        }
        return (records, bytes)
    }
}

tool.main { try Fix($0).run() }

struct RepairReport {
    enum Action: String {
        case none, truncated, refused, forced, salvaged, checked
    }

    let segment: String
    let originalSize: UInt64
    let verification: Verification
    var validRecords: Int
    var action = Action.none
    var recoveredSize: UInt64 = 0

    init(segment: String, originalSize: UInt64, verification: Verification) {
        self.segment = segment
        self.originalSize = originalSize
        self.verification = verification
        validRecords = verification.validRecords
    }

    mutating func finish(_ action: Action, recoveredSize: UInt64) -> RepairReport {
        self.action = action
        self.recoveredSize = recoveredSize
        return self
    }

    var exitCode: ExitCode {
        action == .refused || action == .checked ? .dataRejected : .success
    }

    var json: String {
        let failure = verification.failure
        let name = String(decoding: JSONText.quoted(segment), as: UTF8.self)
        let reason = failure.map { String(decoding: JSONText.quoted($0.error.reason), as: UTF8.self) } ?? "null"
        let ranges = verification.damaged.map { "[\($0.start),\($0.end)]" }.joined(separator: ",")
        return "{\"segment\":\(name),\"original_size\":\(originalSize),\"recovered_size\":\(recoveredSize),"
            + "\"lost_bytes\":\(originalSize >= recoveredSize ? originalSize - recoveredSize : 0),"
            + "\"failure_offset\":\(failure.map { String($0.offset) } ?? "null"),\"failure_reason\":\(reason),"
            + "\"valid_records\":\(validRecords),\"action\":\"\(action.rawValue)\",\"verified_from\":\(verification.from),"
            + "\"records_after_damage\":\(verification.recordsAfterDamage),\"damaged_ranges\":[\(ranges)]}\n"
    }
}
