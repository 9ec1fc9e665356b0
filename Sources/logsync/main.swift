import LogFormat
import LogIO
import LogJSON
import LogNATS
import LogCLI
import Glibc

let tool = Tool(ToolSpec(
    name: "logsync",
    synopsis: [
        "push [options] nats://HOST[:PORT]/BUCKET < records.jsonl",
        "position [options] nats://HOST[:PORT]/BUCKET",
        "pull [--follow] [options] nats://HOST[:PORT]/BUCKET",
    ],
    about: """
        Replicate a store into a NATS JetStream key-value bucket, and read it back.

        `push` reads record JSON lines (as logscan --follow prints them) from stdin and
        writes each put as a KV put and each delete as a KV delete, in input order,
        creating the bucket if it is missing. Each message carries the record's
        timestamp (header Logkit-Timestamp) and cursor (Logkit-Cursor). Publishes are
        pipelined (--window), but each names the message id of the one before it, so
        the bucket never holds a record without every record before it. Whenever all
        input so far is acknowledged and no more is ready, at the end of input, and
        once a second while input keeps coming, push prints what the server has
        acknowledged, and only that:

          {"acknowledged":1200,"sequence":1200,"cursor":{"segment":"data/segment-0001.dat",...}}

        A lost connection is reconnected (--reconnect); the records in flight that
        the server stored are counted, the others sent again. push must be the
        bucket's only writer while it runs.

        `position` prints the cursor of the last record in the bucket (looking back
        past at most 1000 messages other clients wrote), or an empty line for a
        missing or empty bucket, so a crash of the follower, of push or of the server
        is resumed with:

          logscan --follow --after "$(logsync position URL)" data | logsync push URL

        `pull` prints the newest value of every key as record JSON lines, ready for
        logenc -a, and exits; deleted keys are left out. With --follow it goes on with
        every later change (deletes as delete records) until killed.

        Keys are encoded for NATS: A-Z a-z 0-9 - _ / and inner dots stay as they are,
        every other byte becomes =XX (hex), so a key of the plain characters reads the
        same from any NATS client. Values travel as bytes.
        """,
    options: [
        Option(["--follow"], nil, "pull: after every key's value, print every later change until killed"),
        Option(["--window"], "N", "push: records in flight before waiting for acknowledgements (default 4096)"),
        Option(["--history"], "N", "push: values kept per key, when push creates the bucket (1 to 64, default 1)"),
        Option(["--replicas"], "N", "push: copies of the bucket on a cluster, when push creates it (1 to 5, default 1)"),
        Option(["--timeout"], "SECONDS", "seconds to wait for the server at any one point (default 5)"),
        Option(["--reconnect"], "SECONDS", "push, pull --follow: seconds to keep reconnecting to a server that went away (default 10)"),
        Option.maxRecord,
    ],
    exitStatus: """
        0 success; 1 a malformed input line, or a record the bucket cannot take (the \
        records before it were acknowledged), or no position to resume from; 2 usage, an unreachable server, a \
        refused connection, a lost acknowledgement or an error from JetStream.
        """,
    examples: [
        "logscan --follow --after \"$(logsync position nats://127.0.0.1:4222/users)\" data | logsync push nats://127.0.0.1:4222/users",
        "logsync pull nats://127.0.0.1:4222/users | logenc -a replica/",
        "logsync pull --follow nats://10.0.0.2:4222/users | logenc -a mirror/",
    ]))

struct Options {
    let command: String
    let url: ServerURL
    let timeout: Double
    let reconnectFor: Double
    let window: Int
    let history: Int
    let replicas: Int
    let follow: Bool
    let maxRecord: Int

    init(_ arguments: ParsedArguments) throws {
        let operands = arguments.positionalStrings
        guard let command = operands.first else { throw UsageError("no command given: push, position or pull") }
        guard ["push", "position", "pull"].contains(command) else {
            throw UsageError("unknown command '\(command)': push, position or pull")
        }
        guard operands.count == 2 else {
            throw UsageError(operands.count == 1 ? "\(command) needs a URL: nats://HOST[:PORT]/BUCKET" : "\(command) takes one URL, not \(operands.count - 1)")
        }
        self.command = command
        do throws(URLError) {
            url = try ServerURL(parsing: operands[1])
        } catch {
            throw UsageError(error.message)
        }
        func only(_ option: String, for commands: String...) throws {
            if arguments.has(option) && !commands.contains(command) {
                throw UsageError("\(option) is used with \(commands.joined(separator: " or ")), not \(command)")
            }
        }
        try only("--follow", for: "pull")
        try only("--window", for: "push")
        try only("--history", for: "push")
        try only("--replicas", for: "push")
        try only("--reconnect", for: "push", "pull")
        try only("--max-record", for: "push")
        follow = arguments.has("--follow")
        timeout = try Options.seconds(arguments, "--timeout") ?? 5
        reconnectFor = try Options.seconds(arguments, "--reconnect") ?? 10
        window = try Options.count(arguments, "--window", 1...1_000_000) ?? 4096
        history = try Options.count(arguments, "--history", 1...64) ?? 1
        replicas = try Options.count(arguments, "--replicas", 1...5) ?? 1
        maxRecord = try arguments.maxRecord()
    }

    static func seconds(_ arguments: ParsedArguments, _ key: String) throws(UsageError) -> Double? {
        guard let text = arguments.string(key) else { return nil }
        guard let value = Double(text), value.isFinite, value >= 0.1, value <= 86400 else {
            throw UsageError("option \(key): '\(text)' is not a number of seconds from 0.1 to 86400")
        }
        return value
    }

    static func count(_ arguments: ParsedArguments, _ key: String, _ range: ClosedRange<Int>) throws(UsageError) -> Int? {
        guard let value = try arguments.unsigned(key) else { return nil }
        guard value <= UInt64(range.upperBound), range.contains(Int(value)) else {
            throw UsageError("option \(key): \(value) is not from \(range.lowerBound) to \(range.upperBound)")
        }
        return Int(value)
    }
}

// MARK: push

/// Cursors as `logscan --follow` writes them, built from a line's address
/// fields without a String per record.
final class CursorLine {
    private(set) var line: [UInt8] = []
    private var segment: [UInt8] = []
    private var quotedSegment: [UInt8] = []

    /// Makes `line` the cursor of a line's address; false if it has none.
    func make(_ address: ScanAddress) -> Bool {
        guard let segment = address.segment, let offset = address.offset, let length = address.length,
              let checksum = address.checksum
        else { return false }
        if !segment.elementsEqual(self.segment) {
            self.segment = Array(segment)
            quotedSegment = JSONText.quoted(String(decoding: segment, as: UTF8.self))
        }
        line.removeAll(keepingCapacity: true)
        line += "{\"segment\":".utf8
        line += quotedSegment
        line += ",\"offset\":\(offset),\"length\":\(length),\"checksum\":\"\(Hex.word(checksum))\"}".utf8
        return true
    }
}

func push(_ options: Options) throws -> ExitCode {
    signal(SIGPIPE, SIG_IGN)
    let publisher = try Publisher(url: options.url, settings: .init(
        timeout: options.timeout, reconnectFor: options.reconnectFor, window: options.window,
        history: options.history, replicas: options.replicas))
    let output = OutputBuffer(sink: .standardOutput)
    var reportedCount: UInt64?
    var lastReport = monotonicSeconds()

    /// One line for each new acknowledged count; `final`: the last line,
    /// printed even when nothing was acknowledged, but never twice.
    func report(final: Bool = false) throws {
        guard publisher.acknowledged != reportedCount || (final && reportedCount == nil) else { return }
        let cursor = publisher.acknowledgedCursor.map { String(decoding: $0, as: UTF8.self) } ?? "null"
        try output.append("{\"acknowledged\":\(publisher.acknowledged),\"sequence\":\(publisher.acknowledgedSequence),\"cursor\":\(cursor)}\n")
        try output.flush()
        reportedCount = publisher.acknowledged
        lastReport = monotonicSeconds()
    }

    let parser = RecordLineParser()
    let cursors = CursorLine()
    do {
        try parser.forEachRecord(in: .standardInput, maxRecord: options.maxRecord, { record, line in
            if record.isCommit { return }
            let hasCursor = cursors.make(record.address)
            do {
                try cursors.line.withUnsafeBytes { cursor in
                    try publisher.add(PushRecord(
                        isDelete: record.type == .delete, key: record.key, value: record.value,
                        timestamp: record.timestamp ?? currentTimeMillis(), cursor: hasCursor ? cursor : nil))
                }
            } catch let refused as RecordRefused {
                throw InputLineError(line: line, reason: refused.reason)
            }
        }, afterChunk: {
            try publisher.sendQueued()
            if waitForInput(0, publisher) {
                if monotonicSeconds() - lastReport >= 1 { try report() }
                return
            }
            // Input paused: everything so far is acknowledged before it is
            // reported, and before waiting.
            try publisher.drain()
            try report()
            while !waitForInput(-1, publisher) { try publisher.serviceIdle() }
        })
    } catch let error as InputLineError {
        try publisher.drain()
        try report(final: true)
        throw error
    } catch let error as NATSError {
        // What was acknowledged before the failure is still reported.
        try? report()
        throw error
    }
    try publisher.drain()
    try report(final: true)
    return .success
}

/// Whether stdin is readable (or at its end) within `milliseconds` (-1:
/// until it is, or until the connection needs attention, which returns false).
func waitForInput(_ milliseconds: Int32, _ publisher: Publisher) -> Bool {
    var descriptors = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: publisher.descriptor ?? -1, events: Int16(POLLIN), revents: 0)]
    while true {
        let ready = poll(&descriptors, 2, milliseconds)
        if ready < 0 && errno == EINTR { continue }
        // An error polling stdin shows as readable: the read that follows reports it.
        if ready < 0 || descriptors[0].revents != 0 { return true }
        return false
    }
}

// MARK: position and pull

func position(_ options: Options) throws -> Never {
    let connection = try Connection(url: options.url, timeout: options.timeout)
    let cursor = try Bucket(options.url.bucket).position(JetStream(connection))
    // Prints and exits 0.
    tool.print((cursor.map { String(decoding: $0, as: UTF8.self) } ?? "") + "\n")
}

func pull(_ options: Options) throws -> ExitCode {
    signal(SIGPIPE, SIG_IGN)
    let watcher = try Watcher(url: options.url, timeout: options.timeout, reconnectFor: options.reconnectFor)
    let output = OutputBuffer(sink: .standardOutput)
    do {
        try watcher.run(follow: options.follow, deliver: { entry in
            try RecordJSON.write(type: entry.isDelete ? .delete : .put, key: entry.key, value: entry.value, timestamp: entry.timestamp, to: output)
        }, idle: { try output.flush() })
        try output.flush()
    } catch let error as SystemError where error.errno == EPIPE {
        // The reader went away: a follower in a pipeline ends quietly.
    }
    return .success
}

tool.main { arguments in
    let options = try Options(arguments)
    switch options.command {
    case "push": return try push(options)
    case "position": try position(options)
    default: return try pull(options)
    }
}
