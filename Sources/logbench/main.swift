import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
import Glibc

let tool = Tool(ToolSpec(
    name: "logbench",
    synopsis: ["[options]", "ownership-cell MODE retain|drop SEGMENT"],
    about: """
        Measure logkit beside its peers: for each size, generate a seeded dataset,
        build the stores, then time every workload (bulk puts with sync none and
        batch, single-put processes, repeated puts, deletes, lookups one process each
        and in a batch, full scan, verify-only scan, index build, recovery full and
        --from-index, compaction) with logkit and with each installed peer (sqlite3,
        a JSON-lines log read with grep and jq, tkrzw_dbm_util, mdb_dump, and cat as
        the floor), after a warm-up, several runs each, median and spread. Then the
        buffer-ownership experiment. Writes bench.json, bench.md, bench.svg and
        buffer-ownership.json into the reports directory; a progress line goes to
        stderr.
        """,
    options: [
        Option(["--sizes"], "N,N,...", "dataset sizes in records (default 10000,100000,1000000)"),
        Option(["--runs"], "N", "measured runs per command (default 5)"),
        Option(["--warmups"], "N", "warm-up runs per command (default 1)"),
        Option(["--bin"], "DIR", "where the logkit tools are (default bin)", completion: .directory),
        Option(["--work"], "DIR", "scratch space for datasets and stores (default data/bench)", completion: .directory),
        Option(["--reports"], "DIR", "where the reports go (default reports)", completion: .directory),
        Option(["--no-ownership"], nil, "skip the buffer-ownership experiment"),
    ],
    exitStatus: "0 measured and reported; 2 usage error, a missing tool or a failed command.",
    examples: [
        "make bench                     # the default sizes, under 10 minutes here",
        "make bench-quick               # a smoke run, under a minute",
        "logbench --sizes 100000 --runs 3",
    ]))

var sizes = [10_000, 100_000, 1_000_000]
var settings = Settings()
var bin = "bin"
var work = "data/bench"
var reports = "reports"
var ownership = true

if CommandLine.arguments.count == 5 && CommandLine.arguments[1] == "ownership-cell" {
    let retain = CommandLine.arguments[3]
    guard retain == "retain" || retain == "drop" else { tool.usageError("ownership-cell needs retain or drop") }
    BufferOwnership.runCell(mode: CommandLine.arguments[2], retain: retain == "retain", segment: CommandLine.arguments[4])
}

tool.main { arguments in
    if let text = arguments.positionalStrings.first { throw UsageError("unexpected argument '\(text)'") }
    if let text = arguments.string("--sizes") {
        let parsed = text.split(separator: ",").map { Int($0) }
        guard !parsed.isEmpty, parsed.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw UsageError("option --sizes: '\(text)' is not a list of positive record counts")
        }
        sizes = parsed.map { $0! }
    }
    if let runs = try arguments.unsigned("--runs") { settings.runs = max(1, Int(clamping: runs)) }
    if let warmups = try arguments.unsigned("--warmups") { settings.warmups = Int(clamping: warmups) }
    bin = try arguments.path("--bin") ?? bin
    work = try arguments.path("--work") ?? work
    reports = try arguments.path("--reports") ?? reports
    ownership = !arguments.has("--no-ownership")
    try benchmark()
    return .success
}

@MainActor
func benchmark() throws {
    let started = currentTimeMillis()
    bin = FileSystem.absolutePath(bin)
    for name in ["logenc", "logdec", "logscan", "logidx", "logfix", "logpack"] where !FileSystem.exists("\(bin)/\(name)") {
        tool.fail("\(bin)/\(name): missing; run make build first", .usage)
    }
    try FileSystem.makeDirectories(work)
    try FileSystem.makeDirectories(reports)
    work = FileSystem.absolutePath(work)
    reports = FileSystem.absolutePath(reports)
    // Commands run in the work area, where their scratch files belong.
    guard chdir(work) == 0 else { throw SystemError(errno: errno, operation: "chdir", path: work) }
    let progress = Progress()
    let machine = Machine.describe()
    let peers = Peers()
    progress.line("machine: \(machine.summary)")
    for (peer, reason) in peers.missing { progress.line("skipping \(peer): \(reason)") }

    var measurements: [Measurement] = []
    var skipped = peers.missing
    for size in sizes.sorted() {
        let data = Dataset(size: size, directory: "\(work)/\(size)")
        progress.line("[\(size)] generating the dataset and building the stores")
        try data.generate()
        guard chdir(data.directory) == 0 else { throw SystemError(errno: errno, operation: "chdir", path: data.directory) }
        let plan = Plan(data: data, bin: bin, peers: peers, includeFixedSize: size == sizes.max())
        for step in plan.setup { _ = try Runner.shell(step) }
        for workload in plan.workloads {
            measurements.append(try Measure.run(workload.logkit, of: workload, size: size, settings: settings, progress: progress))
            for peer in workload.peers {
                measurements.append(try Measure.run(peer, of: workload, size: size, settings: settings, progress: progress))
            }
            for (peer, reason) in workload.skipped {
                let entry = (tool: peer, reason: "\(workload.name): \(reason)")
                if !skipped.contains(where: { $0.tool == entry.tool && $0.reason == entry.reason }) { skipped.append(entry) }
            }
        }
    }

    var ownershipReport: (json: String, markdown: String)?
    if ownership, let size = sizes.max() {
        progress.line("[\(size)] buffer ownership: six ways to hold decoded records")
        ownershipReport = try BufferOwnership.run(segment: "\(work)/\(size)/base.seg", records: size, executable: "/proc/self/exe")
        try FileSystem.writeAtomically("\(reports)/buffer-ownership.json") { try $0.writeAll(ownershipReport!.json) }
    }

    let report = RunReport(machine: machine, settings: settings, sizes: sizes.sorted(), started: started,
                           measurements: measurements, skipped: skipped,
                           ownershipJSON: ownershipReport?.json, ownershipMarkdown: ownershipReport?.markdown)
    try FileSystem.writeAtomically("\(reports)/bench.json") { try $0.writeAll(report.json) }
    try FileSystem.writeAtomically("\(reports)/bench.md") { try $0.writeAll(report.markdown) }
    try FileSystem.writeAtomically("\(reports)/bench.svg") { try $0.writeAll(report.svg) }
    progress.line("wrote \(reports)/bench.json, bench.md, bench.svg\(ownershipReport == nil ? "" : ", buffer-ownership.json") in \((currentTimeMillis() - started) / 1000) s")
}
