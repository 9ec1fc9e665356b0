// Timing a workload: warm-up runs first (page cache, binaries), then the
// measured runs; the median is the figure, min and max its spread. Never one
// run. A peer so slow that its warm-up takes seconds gets fewer runs, so the
// whole benchmark stays within its time budget; the run count is reported.

import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI

struct Measurement {
    let size: Int
    let workload: String
    let variant: String
    let tool: String
    let command: String
    let operations: Int
    let unit: String
    /// Microseconds, sorted.
    let times: [UInt64]
    let peakRSSKiB: Int

    var medianMilliseconds: Double {
        let middle = times.count / 2
        let median = times.count % 2 == 1 ? Double(times[middle]) : Double(times[middle - 1] + times[middle]) / 2
        return median / 1000
    }
    var minMilliseconds: Double { Double(times.first ?? 0) / 1000 }
    var maxMilliseconds: Double { Double(times.last ?? 0) / 1000 }
    /// Operations per second at the median.
    var throughput: Double { medianMilliseconds > 0 ? Double(operations) / (medianMilliseconds / 1000) : 0 }
}

struct Settings {
    var runs = 5
    var warmups = 1
    /// Above this warm-up time a command gets only `slowRuns` runs.
    var slowMicroseconds: UInt64 = 4_000_000
    var slowRuns = 3
}

enum Measure {
    static func run(_ command: Command, of workload: Workload, size: Int, settings: Settings, progress: Progress) throws -> Measurement {
        var warmup: UInt64 = 0
        for _ in 0..<settings.warmups {
            warmup = max(warmup, try once(command).microseconds)
        }
        var runs = max(settings.runs, workload.minimumRuns)
        if warmup > settings.slowMicroseconds { runs = min(runs, settings.slowRuns) }
        var times: [UInt64] = []
        var peak = 0
        for k in 0..<runs {
            progress.status("[\(size)] \(workload.name) (\(workload.variant)) \(command.tool): run \(k + 1)/\(runs)")
            let result = try once(command)
            times.append(result.microseconds)
            peak = max(peak, result.maxRSSKiB)
        }
        let measurement = Measurement(
            size: size, workload: workload.name, variant: workload.variant, tool: command.tool, command: command.line,
            operations: workload.operations, unit: workload.unit, times: times.sorted(), peakRSSKiB: peak)
        progress.line("[\(size)] \(workload.name) (\(workload.variant)) \(command.tool): median \(format(measurement.medianMilliseconds)) ms over \(runs) runs")
        return measurement
    }

    private static func once(_ command: Command) throws -> RunResult {
        // Every run starts with no dirty pages left by the one before, so
        // that run's writeback is not billed to this one (for every tool).
        _ = try Runner.shell((command.prepare.map { $0 + " && " } ?? "") + "sync")
        var result = try command.argv.map { try Runner.run($0, capture: command.selfTimed, label: command.line) }
            ?? Runner.shell(command.line, capture: command.selfTimed)
        if command.selfTimed {
            guard let last = result.output.split(separator: "\n").last, let microseconds = UInt64(last) else {
                throw RunFailure(command: command.line, status: 0, stderr: "printed no time: \(result.output)")
            }
            result.microseconds = microseconds
        }
        return result
    }
}

/// The progress line on stderr: rewritten in place on a terminal, one line
/// per finished measurement otherwise.
final class Progress {
    private let terminal = FileDescriptor.standardError.isTerminal

    func status(_ text: String) {
        guard terminal else { return }
        try? FileDescriptor.standardError.writeAll("\r\u{1B}[K" + text)
    }

    func line(_ text: String) {
        try? FileDescriptor.standardError.writeAll((terminal ? "\r\u{1B}[K" : "") + "logbench: " + text + "\n")
    }
}

func format(_ value: Double, decimals: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    if decimals == 0, text.hasSuffix(".0") { text.removeLast(2) }
    return text
}
