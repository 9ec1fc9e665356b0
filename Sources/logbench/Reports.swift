// The three reports of a run: bench.json (every figure, with the machine and
// settings), bench.md (tables a person reads), bench.svg (throughput per
// workload, logkit beside each peer, on a log scale). All are computed from
// the same measurements; ratios compare figures taken in the same run.

import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
import Glibc

struct Target {
    let issue: Int
    let figure: String
    /// What the issue asks, in words.
    let goal: String
    let met: Bool?
    let measured: String
    let peer: String
}

struct RunReport {
    let machine: Machine
    let settings: Settings
    let sizes: [Int]
    let started: UInt64
    let measurements: [Measurement]
    let skipped: [(tool: String, reason: String)]
    let ownershipJSON: String?
    let ownershipMarkdown: String?

    private func find(_ size: Int, _ workload: String, _ variant: String? = nil, tool: String = "logkit") -> Measurement? {
        measurements.first {
            $0.size == size && $0.workload == workload && $0.tool == tool && (variant == nil || $0.variant == variant!)
        }
    }

    // MARK: Targets

    /// Every figure the tool issues set, measured at one million records
    /// (or the largest size run, said so), with its peer from the same run.
    var targets: [Target] {
        guard let size = sizes.max() else { return [] }
        let note = size == 1_000_000 ? "" : " (at \(size) records, not 1M)"
        func ms(_ m: Measurement?) -> String { m.map { "\(format($0.medianMilliseconds)) ms" } ?? "not measured" }
        func peerText(_ m: Measurement?, _ label: String) -> String { m.map { "\(label): \(ms($0))" } ?? "\(label): not run" }
        func under(_ issue: Int, _ figure: String, _ limit: Double, _ m: Measurement?, peer: String = "") -> Target {
            Target(issue: issue, figure: figure + note, goal: "under \(format(limit, decimals: 0)) ms",
                   met: m.map { $0.medianMilliseconds < limit }, measured: ms(m), peer: peer)
        }
        let bulkNoneFile = find(size, "bulk put", "sync none, from a file")
        let batchPipe = find(size, "bulk put", "sync batch, from a pipe")
        let nonePipe = find(size, "bulk put", "sync none, from a pipe")
        let slowdown = batchPipe.flatMap { b in nonePipe.map { b.medianMilliseconds / $0.medianMilliseconds } }
        let get = find(size, "get", "one process per lookup")
        let sqliteGet = find(size, "get", "one process per lookup", tool: "sqlite3")
        let getRatio = get.flatMap { g in sqliteGet.map { g.medianMilliseconds / $0.medianMilliseconds } }
        let recovery = find(size, "recovery", "clean segment, full verify")
        let verify = find(size, "verify scan")
        let recoveryRatio = recovery.flatMap { r in verify.map { r.medianMilliseconds / $0.medianMilliseconds } }
        let lookups = measurements.first { $0.size == size && $0.workload == "get" && $0.variant.hasSuffix("keys on stdin") && $0.tool == "logkit" }

        return [
            under(2, "logenc: JSON lines to binary", 400, find(size, "encode"),
                  peer: peerText(find(size, "bulk put", "sync none, from a file", tool: "sqlite3"), "sqlite3 import")),
            under(2, "logdec: binary to JSON lines", 500, find(size, "decode")),
            under(3, "logscan --count", 150, verify, peer: peerText(find(size, "verify scan", tool: "cat (floor)"), "cat")),
            under(3, "logscan to JSON lines", 400, find(size, "scan"),
                  peer: [peerText(find(size, "scan", tool: "lmdb"), "mdb_dump -p"), peerText(find(size, "scan", tool: "cat (floor)"), "cat")].joined(separator: "; ")),
            under(3, "logenc -a --sync none", 500, bulkNoneFile),
            Target(issue: 3, figure: "logenc -a --sync batch from a pipe vs --sync none from a pipe" + note, goal: "at most 10% slower",
                   met: slowdown.map { $0 <= 1.10 }, measured: slowdown.map { "\(format(($0 - 1) * 100))% (\(ms(batchPipe)) vs \(ms(nonePipe)))" } ?? "not measured",
                   peer: ""),
            under(4, "index build from logscan --no-values", 1500, find(size, "index build"),
                  peer: peerText(find(size, "index build", tool: "sqlite3"), "sqlite3 CREATE INDEX")),
            Target(issue: 4, figure: "one logidx get process" + note, goal: "no slower than a sqlite3 point query",
                   met: getRatio.map { $0 <= 1.0 }, measured: ms(get), peer: peerText(sqliteGet, "sqlite3")),
            under(4, "\(lookups?.operations ?? 0) keys through logidx get -", 300, lookups,
                  peer: peerText(measurements.first { $0.size == size && $0.workload == "get" && $0.variant.hasSuffix("keys on stdin") && $0.tool == "sqlite3" }, "sqlite3 join")),
            under(5, "logpack --in-place, half overwritten or deleted", 600, find(size, "compaction"),
                  peer: peerText(find(size, "compaction", tool: "tkrzw"), "tkrzw_dbm_util rebuild")),
            Target(issue: 5, figure: "logfix of a clean segment vs logscan --count" + note, goal: "no slower than logscan --count",
                   met: recoveryRatio.map { $0 <= 1.0 }, measured: recoveryRatio.map { "\(ms(recovery)), \(format($0, decimals: 2))x" } ?? "not measured",
                   peer: peerText(verify, "logscan --count")),
            under(5, "logfix --from-index with a 1 KB tail", 10, find(size, "recovery", "torn tail after a 1 KB tail, --from-index")),
        ] + speedTargets(size, note: note)
    }

    /// Issue 15's figures: logkit against the floors (reading, checksumming)
    /// and against sqlite3, each a multiple of the other, same run.
    private func speedTargets(_ size: Int, note: String) -> [Target] {
        func ms(_ m: Measurement?) -> String { m.map { "\(format($0.medianMilliseconds)) ms" } ?? "not measured" }
        func ratio(_ a: Measurement?, _ b: Measurement?) -> Double? {
            a.flatMap { a in b.map { a.medianMilliseconds / $0.medianMilliseconds } }
        }
        func times(_ figure: String, _ goal: String, _ a: Measurement?, _ b: Measurement?, _ label: String, limit: Double, atMost: Bool = true) -> Target {
            let r = ratio(a, b)
            return Target(issue: 15, figure: figure + note, goal: goal, met: r.map { atMost ? $0 <= limit : $0 >= limit },
                          measured: r.map { "\(ms(a)), \(format($0, decimals: 2))x" } ?? "not measured", peer: "\(label): \(ms(b))")
        }
        func under(_ figure: String, _ limit: Double, _ m: Measurement?, peer: String = "") -> Target {
            Target(issue: 15, figure: figure + note, goal: "at most \(format(limit, decimals: 0)) ms",
                   met: m.map { $0.medianMilliseconds <= limit }, measured: ms(m), peer: peer)
        }
        let verify = find(size, "verify scan")
        let cat = find(size, "verify scan", tool: "cat (floor)")
        let crc = find(size, "verify scan", tool: "zlib crc32 (floor)")
        let encode = find(size, "encode")
        let sqliteImport = find(size, "bulk put", "sync none, from a file", tool: "sqlite3")
        let sqliteIndex = find(size, "index build", "from the segment", tool: "sqlite3")
        return [
            times("logscan --count vs cat SEG > /dev/null", "at most 3x cat", verify, cat, "cat", limit: 3),
            Target(issue: 15, figure: "logscan --count vs zlib's crc32 over the same bytes" + note, goal: "reported (the checksum floor)", met: nil,
                   measured: ratio(verify, crc).map { "\(ms(verify)), \(format($0, decimals: 2))x" } ?? "not measured",
                   peer: "zlib crc32 in Python: \(ms(crc))"),
            under("logenc: JSON lines to binary", 250, encode),
            times("sqlite3 .import vs logenc", "logenc at least 7x faster", sqliteImport, encode, "logenc", limit: 7, atMost: false),
            under("logscan to JSON lines", 150, find(size, "scan"), peer: "cat: \(ms(find(size, "scan", tool: "cat (floor)")))"),
            under("logdec", 150, find(size, "decode")),
            times("index build from the segment vs sqlite3 CREATE INDEX", "at most 0.5x", find(size, "index build", "from the segment"), sqliteIndex, "sqlite3", limit: 0.5),
            times("index build, logscan --no-values | logidx -o, vs sqlite3 CREATE INDEX", "at most 1x", find(size, "index build", "from logscan --no-values"), sqliteIndex, "sqlite3", limit: 1),
            under("logpack --in-place, half overwritten or deleted", 200, find(size, "compaction")),
        ]
    }

    // MARK: JSON

    var json: String {
        func q(_ s: String) -> String { String(decoding: JSONText.quoted(s), as: UTF8.self) }
        func number(_ d: Double) -> String { format(d, decimals: 3) }
        var out = "{\n"
        out += "\"timestamp\":\(started),\n"
        out += "\"machine\":{\"cpu_model\":\(q(machine.cpuModel)),\"cpu_count\":\(machine.cpuCount),\"os\":\(q(machine.os)),\"kernel\":\(q(machine.kernel)),\"swift_version\":\(q(machine.swiftVersion))},\n"
        out += "\"settings\":{\"sizes\":[\(sizes.map(String.init).joined(separator: ","))],\"runs\":\(settings.runs),\"warmups\":\(settings.warmups),\"checksums\":\"verified\",\"build\":\"release, static executables\"},\n"
        out += "\"skipped\":[" + skipped.map { "{\"tool\":\(q($0.tool)),\"reason\":\(q($0.reason))}" }.joined(separator: ",") + "],\n"
        out += "\"results\":[\n" + measurements.map { m in
            "{\"size\":\(m.size),\"workload\":\(q(m.workload)),\"variant\":\(q(m.variant)),\"tool\":\(q(m.tool)),"
                + "\"sync\":\(q(syncMode(m))),\"command\":\(q(m.command)),\"operations\":\(m.operations),\"unit\":\(q(m.unit)),"
                + "\"median_ms\":\(number(m.medianMilliseconds)),\"min_ms\":\(number(m.minMilliseconds)),\"max_ms\":\(number(m.maxMilliseconds)),"
                + "\"runs_ms\":[\(m.times.map { number(Double($0) / 1000) }.joined(separator: ","))],"
                + "\"throughput\":\(number(m.throughput)),\"peak_rss_kib\":\(m.peakRSSKiB)}"
        }.joined(separator: ",\n") + "\n],\n"
        out += "\"targets\":[\n" + targets.map { t in
            "{\"issue\":\(t.issue),\"figure\":\(q(t.figure)),\"goal\":\(q(t.goal)),\"met\":\(t.met.map { $0 ? "true" : "false" } ?? "null"),"
                + "\"measured\":\(q(t.measured)),\"peer\":\(q(t.peer))}"
        }.joined(separator: ",\n") + "\n]"
        if let ownershipJSON { out += ",\n\"buffer_ownership\":" + ownershipJSON }
        out += "\n}\n"
        return out
    }

    /// The sync mode of a logkit append, for the record; "n/a" elsewhere.
    private func syncMode(_ m: Measurement) -> String {
        guard m.tool == "logkit", m.command.contains(" -a ") else { return "n/a" }
        if m.command.contains("--sync none") { return "none" }
        if m.command.contains("--sync each") { return "each" }
        return "batch"
    }

    // MARK: Markdown

    var markdown: String {
        var out = "# logkit benchmarks\n\n"
        out += "Machine: \(machine.summary).\n"
        out += "Settings: \(settings.runs) runs after \(settings.warmups) warm-up per command (fewer for commands over \(settings.slowMicroseconds / 1_000_000) s; "
        out += "per-process lookups \(measurements.map { $0.times.count }.max() ?? 0)); median, with min-max. Checksums verified; release build, static executables.\n\n"
        if !skipped.isEmpty {
            out += "Skipped peers: " + skipped.map { "\($0.tool) (\($0.reason))" }.joined(separator: "; ") + ".\n\n"
        }
        out += "## Targets from the tool issues\n\n| issue | figure | goal | measured | met | peer, same run |\n|---:|---|---|---|---|---|\n"
        for t in targets {
            out += "| \(t.issue) | \(t.figure) | \(t.goal) | \(t.measured) | \(t.met.map { $0 ? "yes" : "**no**" } ?? "n/a") | \(t.peer) |\n"
        }
        for size in sizes {
            out += "\n## \(size) records\n\n| workload | tool | median | min-max | throughput | peak RSS | vs logkit |\n|---|---|---:|---:|---:|---:|---:|\n"
            for m in measurements where m.size == size {
                let base = find(size, m.workload, m.variant)
                let ratio = base.map { m.medianMilliseconds / max($0.medianMilliseconds, 0.001) }
                out += "| \(m.workload) (\(m.variant)) | \(m.tool) | \(format(m.medianMilliseconds)) ms | \(format(m.minMilliseconds))-\(format(m.maxMilliseconds)) | "
                out += "\(humanRate(m.throughput)) \(m.unit) | \(m.peakRSSKiB / 1024) MiB | \(m.tool == "logkit" ? "" : ratio.map { "\(format($0, decimals: 2))x" } ?? "") |\n"
            }
        }
        out += "\n\"vs logkit\" is the peer's median time divided by logkit's for the same workload: above 1, logkit was faster.\n"
        if let ownershipMarkdown { out += "\n" + ownershipMarkdown }
        return out
    }

    // MARK: SVG

    /// Horizontal bars of throughput per workload at the largest size, one
    /// bar per tool, on a log scale (the peers span several decades).
    var svg: String {
        guard let size = sizes.max() else { return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n" }
        let rows = measurements.filter { $0.size == size && $0.throughput > 0 }
        let tools = rows.reduce(into: [String]()) { if !$0.contains($1.tool) { $0.append($1.tool) } }
        let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
        let low = (rows.map { log10($0.throughput) }.min() ?? 0).rounded(.down)
        let high = (rows.map { log10($0.throughput) }.max() ?? 1).rounded(.up)
        let span = max(high - low, 1)
        let left = 330.0, width = 560.0, bar = 14.0, gap = 10.0
        var groups: [(String, [Measurement])] = []
        for m in rows {
            let title = "\(m.workload) (\(m.variant))"
            if let k = groups.firstIndex(where: { $0.0 == title }) { groups[k].1.append(m) } else { groups.append((title, [m])) }
        }
        let height = 70 + groups.reduce(0.0) { $0 + Double($1.1.count) * bar + gap } + 40 + Double(tools.count) * 18
        func esc(_ s: String) -> String {
            s.replacingAll("&", "&amp;").replacingAll("<", "&lt;").replacingAll(">", "&gt;")
        }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"920\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">logkit throughput at \(size) records (operations per second, log scale)</text>\n"
        out += "<text x=\"10\" y=\"36\" fill=\"#555\">\(esc(machine.summary))</text>\n"
        var y = 60.0
        for decade in stride(from: low, through: high, by: 1) {
            let x = left + (decade - low) / span * width
            out += "<line x1=\"\(format(x))\" y1=\"50\" x2=\"\(format(x))\" y2=\"\(Int(height) - 30 - tools.count * 18)\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(format(x))\" y=\"48\" text-anchor=\"middle\" fill=\"#555\">1e\(Int(decade))</text>\n"
        }
        for (title, members) in groups {
            out += "<text x=\"\(format(left - 8))\" y=\"\(format(y + bar - 3))\" text-anchor=\"end\">\(esc(title))</text>\n"
            for m in members {
                let color = palette[(tools.firstIndex(of: m.tool) ?? 0) % palette.count]
                let w = max(1, (log10(m.throughput) - low) / span * width)
                out += "<rect x=\"\(format(left))\" y=\"\(format(y))\" width=\"\(format(w))\" height=\"\(format(bar - 2))\" fill=\"\(color)\"><title>\(esc(m.tool)): \(humanRate(m.throughput)) \(m.unit)</title></rect>\n"
                out += "<text x=\"\(format(left + w + 4))\" y=\"\(format(y + bar - 4))\" fill=\"#333\">\(humanRate(m.throughput))</text>\n"
                y += bar
            }
            y += gap
        }
        y += 20
        for (k, tool) in tools.enumerated() {
            out += "<rect x=\"\(format(left))\" y=\"\(format(y - 10))\" width=\"12\" height=\"12\" fill=\"\(palette[k % palette.count])\"/>"
            out += "<text x=\"\(format(left + 18))\" y=\"\(format(y))\">\(esc(tool))</text>\n"
            y += 18
        }
        out += "</svg>\n"
        return out
    }
}

func humanRate(_ rate: Double) -> String {
    if rate >= 1_000_000 { return "\(format(rate / 1_000_000, decimals: 2))M" }
    if rate >= 1_000 { return "\(format(rate / 1_000, decimals: 1))k" }
    return format(rate, decimals: 1)
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
