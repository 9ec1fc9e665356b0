// The progress meter of the long runs (logidx builds, logpack, logfix,
// logscan --count, bulk logenc): one line on stderr with the bytes done, the
// rate and, when the total is known, the time left, redrawn at most ten
// times a second and erased when the work is done.
//
// It is shown when stderr is a terminal, or with --progress; otherwise the
// meter does not exist as far as the work is concerned (`reporter()` is
// nil), so a tool in a script writes exactly what it always did. The work
// reports bytes once per read of a megabyte or so, never per record, and
// the clock is read only then. Nothing is drawn in the first half second: a
// quick run would only flicker.
//
// While the meter is on screen it owns the last line of stderr: every
// message goes through the tool's StatusLine, which erases the meter first,
// and a tool erases it before writing to stdout when stdout is a terminal
// too (`beforeOutput`), so neither runs into it.

import LogIO

import Glibc

extension Option {
    /// Every tool with a long run has it.
    public static let progress = Option(
        ["--progress"], nil, "show the progress meter (bytes, rate, time left) even when stderr is not a terminal")
}

/// The last line of stderr, shared by the progress meter and the messages
/// of the tool, so that a message erases the meter instead of running into
/// it. A tool runs on one thread, which is what makes the unchecked
/// Sendable safe.
final class StatusLine: @unchecked Sendable {
    private let write: (String) -> Void
    private var shown = false

    init(_ write: @escaping (String) -> Void) {
        self.write = write
    }

    /// Draws `text` over whatever the line showed.
    func show(_ text: String) {
        write("\r" + text + "\u{1B}[K")
        shown = true
    }

    /// Erases what the line shows, if anything.
    func clear() {
        guard shown else { return }
        write("\r\u{1B}[K")
        shown = false
    }

    /// Writes a message (whole lines) where the meter was.
    func message(_ text: String) {
        write((shown ? "\r\u{1B}[K" : "") + text)
        shown = false
    }
}

public final class Progress {
    /// No drawing before this much of the run has passed (microseconds).
    static let delay: UInt64 = 500_000
    /// Nor more often than this.
    static let interval: UInt64 = 100_000

    private let name: String
    private let line: StatusLine
    private let shown: Bool
    private let sharesTerminalWithOutput: Bool
    private let total: UInt64?
    private let clock: () -> UInt64
    private let started: UInt64
    private var done: UInt64 = 0
    private var drawnAt: UInt64?
    private var finished = false

    init(name: String, line: StatusLine, shown: Bool, sharesTerminalWithOutput: Bool, total: UInt64?, clock: @escaping () -> UInt64) {
        self.name = name
        self.line = line
        self.shown = shown
        self.sharesTerminalWithOutput = sharesTerminalWithOutput
        self.total = total
        self.clock = clock
        started = clock()
    }

    private convenience init(_ tool: Tool, _ arguments: ParsedArguments, total: UInt64?) {
        self.init(
            name: tool.name, line: tool.statusLine,
            shown: arguments.has(Option.progress.key) || FileDescriptor.standardError.isTerminal,
            sharesTerminalWithOutput: FileDescriptor.standardOutput.isTerminal,
            total: total, clock: monotonicMicroseconds)
    }

    /// The meter of work on the files at `paths`: their sizes are the total.
    /// A file that cannot be read counts as empty; the work will say why.
    public convenience init(_ tool: Tool, _ arguments: ParsedArguments, files paths: [String]) {
        var total: UInt64 = 0
        for path in paths {
            var info = stat()
            if stat(path, &info) == 0 { total += UInt64(info.st_size) }
        }
        self.init(tool, arguments, total: total)
    }

    /// The meter of work reading `input`: what is left of it is the total
    /// if it is a regular file; a pipe's is unknown.
    public convenience init(_ tool: Tool, _ arguments: ParsedArguments, reading input: FileDescriptor) {
        var info = stat()
        var total: UInt64?
        if fstat(input.raw, &info) == 0, info.st_mode & S_IFMT == S_IFREG {
            let position = lseek(input.raw, 0, SEEK_CUR)
            if position >= 0, position <= info.st_size { total = UInt64(info.st_size - position) }
        }
        self.init(tool, arguments, total: total)
    }

    /// What to give the work to report with: a function of the bytes one
    /// stream of work has done so far (each stream counting from 0, its
    /// bytes added to those of the streams before it), or nil when the meter
    /// is not shown.
    public func reporter() -> ((UInt64) -> Void)? {
        guard shown else { return nil }
        var counted: UInt64 = 0
        return { [self] sofar in
            guard sofar > counted else { return }
            done += sofar - counted
            counted = sofar
            tick()
        }
    }

    /// The tool is about to write to stdout: if that is a terminal, the
    /// meter is erased (and drawn again at the next report).
    public func beforeOutput() {
        if sharesTerminalWithOutput { line.clear() }
    }

    /// The work is over: the meter is erased and drawn no more.
    public func finish() {
        finished = true
        line.clear()
    }

    private func tick() {
        guard !finished else { return }
        let now = clock()
        let elapsed = now - started
        guard elapsed >= Progress.delay, drawnAt.map({ now - $0 >= Progress.interval }) ?? true else { return }
        drawnAt = now
        line.show(Progress.text(name: name, done: done, total: total, elapsed: elapsed))
    }

    /// The meter's line: `logscan: 41.9 MB of 140.0 MB (29%), 83.8 MB/s, ETA 2s`,
    /// or without a total `logenc: 41.9 MB, 83.8 MB/s`. The rate is the
    /// average since the start (`elapsed`, microseconds), which a run's
    /// pauses (a pipe waiting for its writer) bring down as they should.
    static func text(name: String, done: UInt64, total: UInt64?, elapsed: UInt64) -> String {
        let rate = elapsed > 0 ? Double(done) * 1e6 / Double(elapsed) : 0
        var text = name + ": " + bytes(done)
        if let total {
            let percent = total == 0 ? 100 : min(100, done * 100 / total)
            text += " of \(bytes(total)) (\(percent)%)"
        }
        text += ", " + decimal(rate / 1e6) + " MB/s"
        if let total, rate > 0 {
            text += ", ETA " + duration(seconds: Double(total - min(done, total)) / rate)
        }
        return text
    }

    /// A byte count in decimal units: `512 B`, `41.9 MB`, `1.2 GB`.
    static func bytes(_ count: UInt64) -> String {
        let units: [(UInt64, String)] = [(1_000_000_000_000, "TB"), (1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "kB")]
        for (size, unit) in units where count >= size {
            return decimal(Double(count) / Double(size)) + " " + unit
        }
        return "\(count) B"
    }

    /// Time left, rounded up to a whole second: `7s`, `2m 05s`, `1h 02m`.
    static func duration(seconds: Double) -> String {
        // Capped so that no estimate, however wild, overflows an Int.
        let whole = Int(min(seconds, 1e9).rounded(.up))
        func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m \(twoDigits(whole % 60))s" }
        return "\(whole / 3600)h \(twoDigits(whole / 60 % 60))m"
    }

    /// One decimal place, rounded half up.
    static func decimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
