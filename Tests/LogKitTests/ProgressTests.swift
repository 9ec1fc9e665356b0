import Testing
@testable import LogCLI

@Suite("Progress meter")
struct ProgressTests {
    @Test("byte counts in decimal units, one decimal place")
    func bytes() {
        #expect(Progress.bytes(0) == "0 B")
        #expect(Progress.bytes(999) == "999 B")
        #expect(Progress.bytes(1000) == "1.0 kB")
        #expect(Progress.bytes(225_180) == "225.2 kB")
        #expect(Progress.bytes(41_943_040) == "41.9 MB")
        #expect(Progress.bytes(139_997_736) == "140.0 MB")
        #expect(Progress.bytes(1_250_000_000) == "1.3 GB")
        #expect(Progress.bytes(2_000_000_000_000) == "2.0 TB")
    }

    @Test("time left, rounded up to a second")
    func duration() {
        #expect(Progress.duration(seconds: 0) == "0s")
        #expect(Progress.duration(seconds: 0.2) == "1s")
        #expect(Progress.duration(seconds: 59) == "59s")
        #expect(Progress.duration(seconds: 125) == "2m 05s")
        #expect(Progress.duration(seconds: 3599.5) == "1h 00m")
        #expect(Progress.duration(seconds: 3720) == "1h 02m")
        #expect(Progress.duration(seconds: .infinity) == "277777h 46m", "a wild estimate is capped, never a trap")
    }

    @Test("the line: bytes, total and percentage, rate, time left")
    func line() {
        #expect(Progress.text(name: "logscan", done: 42_000_000, total: 140_000_000, elapsed: 500_000)
            == "logscan: 42.0 MB of 140.0 MB (30%), 84.0 MB/s, ETA 2s")
        #expect(Progress.text(name: "logenc", done: 225_180, total: nil, elapsed: 750_000)
            == "logenc: 225.2 kB, 0.3 MB/s", "no total (a pipe): no percentage, no ETA")
        #expect(Progress.text(name: "logfix", done: 150, total: 100, elapsed: 1_000_000)
            == "logfix: 150 B of 100 B (100%), 0.0 MB/s, ETA 0s", "a file that grew is done at 100%")
        #expect(Progress.text(name: "logpack", done: 0, total: 100, elapsed: 0)
            == "logpack: 0 B of 100 B (0%), 0.0 MB/s", "no rate yet: no ETA")
    }

    /// A meter on a fake clock (microseconds), drawing into `screen`.
    final class Harness {
        var now: UInt64 = 0
        var screen: [String] = []
        var meter: Progress!

        init(shown: Bool = true, terminalOutput: Bool = false) {
            let line = StatusLine { [unowned self] in screen.append($0) }
            meter = Progress(
                name: "t", line: line, shown: shown, sharesTerminalWithOutput: terminalOutput, total: 1_000_000,
                clock: { [unowned self] in now })
        }
    }

    @Test("nothing before half a second, then at most ten draws a second, erased at the end")
    func throttled() throws {
        let h = Harness()
        let report = try #require(h.meter.reporter())
        h.now = 400_000
        report(100_000)
        #expect(h.screen.isEmpty, "a run shorter than half a second never flickers")
        h.now = 500_000
        report(200_000)
        #expect(h.screen == ["\rt: 200.0 kB of 1.0 MB (20%), 0.4 MB/s, ETA 2s\u{1B}[K"])
        h.now = 599_999
        report(300_000)
        #expect(h.screen.count == 1, "within a tenth of a second of the last draw")
        h.now = 600_000
        report(300_000)
        #expect(h.screen.count == 1, "no new bytes, nothing to report")
        report(400_000)
        #expect(h.screen.last == "\rt: 400.0 kB of 1.0 MB (40%), 0.7 MB/s, ETA 1s\u{1B}[K")
        h.meter.finish()
        #expect(h.screen.last == "\r\u{1B}[K")
        h.now = 2_000_000
        report(500_000)
        #expect(h.screen.count == 3, "never drawn after finish")
    }

    @Test("each reporter counts its own stream from 0; the meter adds them up")
    func streams() throws {
        let h = Harness()
        let first = try #require(h.meter.reporter())
        let second = try #require(h.meter.reporter())
        first(300_000)
        h.now = 1_000_000
        second(100_000)
        #expect(h.screen == ["\rt: 400.0 kB of 1.0 MB (40%), 0.4 MB/s, ETA 2s\u{1B}[K"])
    }

    @Test("a meter not shown gives no reporter, so the work never calls it")
    func hidden() {
        #expect(Harness(shown: false).meter.reporter() == nil)
    }

    @Test("erased before output to stdout only when stdout is a terminal too")
    func beforeOutput() throws {
        for terminal in [false, true] {
            let h = Harness(terminalOutput: terminal)
            let report = try #require(h.meter.reporter())
            h.now = 1_000_000
            report(10)
            h.meter.beforeOutput()
            #expect(h.screen.count == (terminal ? 2 : 1))
        }
    }

    @Test("a message erases the meter first, in the same write")
    func message() {
        var written: [String] = []
        let line = StatusLine { written.append($0) }
        line.message("plain\n")
        line.show("meter")
        line.message("tool: warning\n")
        line.clear()
        #expect(written == ["plain\n", "\rmeter\u{1B}[K", "\r\u{1B}[Ktool: warning\n"], "nothing left to clear")
    }
}
