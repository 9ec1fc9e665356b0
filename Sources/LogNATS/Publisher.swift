// Puts and deletes into a bucket, pipelined, in order, each acknowledged.
//
// Up to `window` messages are in flight. Each carries an id (`Nats-Msg-Id`:
// this run's id and the sequence it is to get) and names the id of the one
// before it (`Nats-Expected-Last-Msg-Id`), so the stream takes them only as an
// unbroken run: if one is refused or lost, every later one is refused too,
// even when another client's message took the refused one's place, and the
// bucket never holds a record without those before it. The first on a
// connection names the stream sequence it follows instead
// (`Nats-Expected-Last-Sequence`): a restarted server may not remember the
// last id. Acknowledgements come to `<inbox>.<sequence>`.
//
// A lost connection is survived: reconnect, read the stream's last sequence,
// check that the message there is the in-flight one expected (not another
// writer's), count what got in as acknowledged and send the rest again.

import LogIO
import LogJSON
import Glibc

/// One record to replicate; its bytes are only read during `add`.
public struct PushRecord {
    public var isDelete: Bool
    public var key: UnsafeRawBufferPointer
    public var value: UnsafeRawBufferPointer
    public var timestamp: UInt64
    /// The record's cursor, one JSON line without the newline, if known.
    public var cursor: UnsafeRawBufferPointer?

    public init(isDelete: Bool, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, timestamp: UInt64, cursor: UnsafeRawBufferPointer?) {
        self.isDelete = isDelete
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.cursor = cursor
    }
}

/// A record the bucket cannot take as it is: the data says no.
public struct RecordRefused: Error, Sendable {
    public let reason: String
}

public final class Publisher {
    public struct Settings: Sendable {
        public var timeout: Double
        /// How long to keep trying to reconnect before giving up.
        public var reconnectFor: Double
        public var window: Int
        public var history: Int
        public var replicas: Int

        public init(timeout: Double, reconnectFor: Double, window: Int, history: Int, replicas: Int) {
            self.timeout = timeout
            self.reconnectFor = reconnectFor
            self.window = window
            self.history = history
            self.replicas = replicas
        }
    }

    public let url: ServerURL
    public let bucket: Bucket
    private let settings: Settings
    private var connection: Connection?
    private var jetStream: JetStream?
    private let prefix: [UInt8]

    /// A message in flight: ranges of `held`, which keeps its bytes until it
    /// is acknowledged, since a reconnect sends it again.
    private struct Entry {
        var sequence: UInt64
        var subject: Range<Int>
        var headers: Range<Int>
        var payload: Range<Int>
        var cursor: Range<Int>?
        var acknowledged = false
    }
    private let held = ByteBuffer(capacity: 1 << 20)
    private var entries: [Entry] = []
    private var head = 0
    /// The stream sequence the newest entry will get.
    private var lastAssigned: UInt64

    /// Records of this run the server acknowledged.
    public private(set) var acknowledged: UInt64 = 0
    /// The stream sequence of the last acknowledged record.
    public private(set) var acknowledgedSequence: UInt64
    /// Its cursor, nil if its input had none (or nothing was acknowledged).
    public private(set) var acknowledgedCursor: [UInt8]?
    private var lastProgress = monotonicSeconds()

    /// This run's part of every message id.
    private let runID: [UInt8]
    /// The sequence of the first entry sent on the current connection.
    private var firstOnConnection: UInt64 = 0

    private let frameHeaders = ByteBuffer(capacity: 4096)
    private let frameReply = ByteBuffer(capacity: 64)

    public init(url: ServerURL, settings: Settings) throws {
        self.url = url
        self.settings = settings
        bucket = Bucket(url.bucket)
        prefix = Array(bucket.subjectPrefix.utf8)
        var random = SystemRandomNumberGenerator()
        runID = Array(String(random.next() as UInt64, radix: 36).utf8)
        let connection = try Connection(url: url, timeout: settings.timeout)
        let jetStream = JetStream(connection)
        let state: StreamState
        do {
            state = try bucket.ensure(jetStream, history: settings.history, replicas: settings.replicas)
        } catch let error as NATSError where error.kind == .lost || error.kind == .unavailable {
            // Connected, then lost (a server going down as push starts): nothing
            // was sent yet, so starting over is all a reconnect has to do.
            lastAssigned = 0
            acknowledgedSequence = 0
            try reconnect(after: error, starting: true)
            return
        }
        self.connection = connection
        self.jetStream = jetStream
        lastAssigned = state.lastSequence
        acknowledgedSequence = state.lastSequence
        firstOnConnection = state.lastSequence + 1
    }

    public var inFlight: Int { entries.count - head }

    /// Queues one record; waits for acknowledgements while the window is full.
    public func add(_ record: PushRecord) throws {
        let start = held.count
        held.append(prefix)
        KeyCodec.encode(record.key, into: held)
        let subject = start..<held.count
        if subject.count - prefix.count > KeyCodec.maxEncoded {
            held.count = start
            throw RecordRefused(reason: "key too long for NATS: \(subject.count - prefix.count) bytes encoded, at most \(KeyCodec.maxEncoded)")
        }
        let headersStart = held.count
        held.append(Bucket.timestampHeader)
        held.append(": ")
        held.append(decimal: record.timestamp)
        held.append("\r\n")
        var cursor: Range<Int>?
        if let line = record.cursor {
            held.append(Bucket.cursorHeader)
            held.append(": ")
            let cursorStart = held.count
            held.append(line)
            cursor = cursorStart..<held.count
            held.append("\r\n")
        }
        if record.isDelete { held.append("KV-Operation: DEL\r\n") }
        let headers = headersStart..<held.count
        let payloadStart = held.count
        if !record.isDelete { held.append(record.value) }
        let payload = payloadStart..<held.count
        // NATS/1.0, the message ids (or the expected sequence) and the blank
        // line come on top: under 110 bytes.
        let size = headers.count + payload.count + 128
        if size > (connection?.maxPayload ?? Int.max) {
            held.count = start
            throw RecordRefused(reason: "record of \(size) bytes with its headers is larger than the server's max_payload of \(connection?.maxPayload ?? 0)")
        }
        // Waiting for acknowledgements starts now, not when the last one came.
        if inFlight == 0 { lastProgress = monotonicSeconds() }
        lastAssigned += 1
        entries.append(Entry(sequence: lastAssigned, subject: subject, headers: headers, payload: payload, cursor: cursor))
        // Queued once: a reconnect queues every unacknowledged entry itself.
        if let connection { frame(entries[entries.count - 1], on: connection) }

        try recovering {
            let connection = try connected()
            if connection.queued >= 1 << 16 { try connection.send() }
            while inFlight >= settings.window { try awaitAcknowledgements(connection) }
        }
    }

    /// Sends what is queued and waits until every record is acknowledged.
    public func drain() throws {
        try recovering {
            let connection = try connected()
            try connection.send()
            while inFlight > 0 { try awaitAcknowledgements(connection) }
        }
    }

    /// Sends what is queued and takes the acknowledgements already here.
    public func sendQueued() throws {
        try recovering {
            let connection = try connected()
            try connection.send()
            while inFlight > 0, let message = try connection.nextMessage(wait: 0) { try take(message) }
            compact()
        }
    }

    /// The descriptor to watch while waiting for input, nil when not connected.
    public var descriptor: Int32? { connection?.descriptor }

    /// The connection is readable while nothing is in flight: a PING to
    /// answer, or the server going away, noticed now and mended on the next
    /// `add`.
    public func serviceIdle() throws {
        guard let connection else { return }
        do {
            while let message = try connection.nextMessage(wait: 0) { try take(message) }
        } catch let error as NATSError where error.kind == .lost {
            connection.close()
            self.connection = nil
            self.jetStream = nil
        }
    }

    // MARK: Sending and acknowledging

    /// The connection, made again (with every unacknowledged entry queued
    /// on it) if it was lost.
    private func connected() throws -> Connection {
        if let connection { return connection }
        try reconnect(after: NATSError(.lost, url: url.display, "the connection was lost"))
        return connection!
    }

    private func frame(_ entry: Entry, on connection: Connection) {
        frameHeaders.removeAll()
        frameHeaders.append("NATS/1.0\r\n")
        frameHeaders.append(UnsafeRawBufferPointer(start: held.base + entry.headers.lowerBound, count: entry.headers.count))
        frameHeaders.append("Nats-Msg-Id: ")
        appendMessageID(entry.sequence)
        if entry.sequence > firstOnConnection {
            frameHeaders.append("\r\nNats-Expected-Last-Msg-Id: ")
            appendMessageID(entry.sequence - 1)
        } else {
            frameHeaders.append("\r\nNats-Expected-Last-Sequence: ")
            frameHeaders.append(decimal: entry.sequence - 1)
        }
        frameHeaders.append("\r\n\r\n")
        frameReply.removeAll()
        frameReply.append(Array(connection.inbox.utf8))
        frameReply.append(UInt8(ascii: "."))
        frameReply.append(decimal: entry.sequence)
        connection.publish(
            subject: UnsafeRawBufferPointer(start: held.base + entry.subject.lowerBound, count: entry.subject.count),
            reply: frameReply.bytes, headers: frameHeaders.bytes,
            payload: UnsafeRawBufferPointer(start: held.base + entry.payload.lowerBound, count: entry.payload.count))
    }

    private func appendMessageID(_ sequence: UInt64) {
        frameHeaders.append(runID)
        frameHeaders.append("-")
        frameHeaders.append(decimal: sequence)
    }

    private func awaitAcknowledgements(_ connection: Connection) throws {
        try connection.send()
        guard let message = try connection.nextMessage(wait: settings.timeout) else {
            throw NATSError(.lost, url: url.display, "no acknowledgement within \(seconds(settings.timeout))")
        }
        try take(message)
        while inFlight > 0, let message = try connection.nextMessage(wait: 0) { try take(message) }
        compact()
    }

    /// One acknowledgement (or a reply nobody waits for any more).
    private func take(_ message: Message) throws {
        guard message.sid == Connection.inboxSID, let connection else { return }
        let inboxCount = connection.inbox.utf8.count + 1
        guard message.subject.count > inboxCount,
              let sequence = ProtocolParser.decimal(UnsafeRawBufferPointer(rebasing: message.subject[inboxCount...])),
              head < entries.count, sequence >= entries[head].sequence
        else { return }
        let index = head + Int(sequence - entries[head].sequence)
        guard index < entries.count else { return }
        if message.headers.status == 503 {
            throw NATSError(.refused, url: url.display, "no stream takes \(bucket.subjectPrefix)*: was the bucket deleted while push ran?")
        }
        if let error = Publisher.apiError(message.payload) {
            if error.errorCode == APIError.wrongLastSequence || error.errorCode == APIError.wrongLastMessageID {
                throw NATSError(.refused, url: url.display, "another client wrote to the bucket while push ran (JetStream: \(error.description)); records are stored in order up to sequence \(acknowledgedSequence); resume from logsync position")
            }
            throw NATSError(.refused, url: url.display, "JetStream refused the record for sequence \(sequence): \(error.description) (error \(error.errorCode))")
        }
        guard Publisher.storedSequence(message.payload) == sequence else {
            throw NATSError(.refused, url: url.display, "an acknowledgement for sequence \(sequence) names another sequence: \(String(decoding: message.payload, as: UTF8.self))")
        }
        entries[index].acknowledged = true
        var last: Int?
        while head < entries.count, entries[head].acknowledged {
            last = head
            head += 1
            acknowledged += 1
        }
        if let last {
            acknowledgedSequence = entries[last].sequence
            acknowledgedCursor = entries[last].cursor.map { Array(UnsafeRawBufferPointer(start: held.base + $0.lowerBound, count: $0.count)) }
            lastProgress = monotonicSeconds()
        }
    }

    /// Drops acknowledged entries and their bytes once they are many.
    private func compact() {
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
            held.removeAll()
            return
        }
        guard head >= 4096 || (head > 0 && held.count > 8 << 20) else { return }
        let shift = entries[head].subject.lowerBound
        held.keep(from: shift)
        entries.removeFirst(head)
        head = 0
        for k in entries.indices {
            entries[k].subject = (entries[k].subject.lowerBound - shift)..<(entries[k].subject.upperBound - shift)
            entries[k].headers = (entries[k].headers.lowerBound - shift)..<(entries[k].headers.upperBound - shift)
            entries[k].payload = (entries[k].payload.lowerBound - shift)..<(entries[k].payload.upperBound - shift)
            entries[k].cursor = entries[k].cursor.map { ($0.lowerBound - shift)..<($0.upperBound - shift) }
        }
    }

    /// An acknowledgement is `{"stream":"KV_b", "seq":12}`; only a failed
    /// one has "error", and only it is parsed as a document.
    static func apiError(_ payload: UnsafeRawBufferPointer) -> APIError? {
        guard find("\"error\"", in: payload) != nil else { return nil }
        guard let reply = try? JSONValue.parse(payload) else {
            return APIError(code: 0, errorCode: 0, description: String(decoding: payload, as: UTF8.self))
        }
        return APIError(reply: reply)
    }

    static func storedSequence(_ payload: UnsafeRawBufferPointer) -> UInt64? {
        guard var i = find("\"seq\":", in: payload) else { return nil }
        while i < payload.count, payload[i] == 0x20 { i += 1 }
        var end = i
        while end < payload.count, payload[end] >= 0x30, payload[end] <= 0x39 { end += 1 }
        return ProtocolParser.decimal(UnsafeRawBufferPointer(rebasing: payload[i..<end]))
    }

    /// Where the first `text` in `payload` ends.
    private static func find(_ text: StaticString, in payload: UnsafeRawBufferPointer) -> Int? {
        let needle = UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        guard payload.count >= needle.count else { return nil }
        for start in 0...(payload.count - needle.count) where payload[start] == needle[0] {
            if needle.indices.allSatisfy({ payload[start + $0] == needle[$0] }) { return start + needle.count }
        }
        return nil
    }

    // MARK: Surviving a lost connection

    /// Runs `body`, reconnecting and going on when the connection is lost.
    private func recovering(_ body: () throws -> Void) throws {
        while true {
            do {
                return try body()
            } catch let error as NATSError where error.kind == .lost {
                try reconnect(after: error)
            }
        }
    }

    /// Connects again and sends every unacknowledged entry; `starting`: the
    /// first connection was lost before anything was sent.
    private func reconnect(after error: NATSError, starting: Bool = false) throws {
        connection?.close()
        connection = nil
        jetStream = nil
        let deadline = monotonicSeconds() + settings.reconnectFor
        // A server that takes connections but never acknowledges would
        // otherwise be retried for ever.
        if inFlight > 0 && monotonicSeconds() - lastProgress > settings.reconnectFor + settings.timeout {
            throw NATSError(.unreachable, url: url.display, "no acknowledgement for \(seconds(settings.reconnectFor + settings.timeout)): \(error.reason)")
        }
        var reason = error.reason
        while true {
            do {
                let connection = try Connection(url: url, timeout: settings.timeout)
                let jetStream = JetStream(connection)
                let state = try bucket.ensure(jetStream, history: settings.history, replicas: settings.replicas)
                self.connection = connection
                self.jetStream = jetStream
                if starting {
                    lastAssigned = state.lastSequence
                    acknowledgedSequence = state.lastSequence
                }
                try reconcile(state, jetStream)
                firstOnConnection = lastAssigned - UInt64(inFlight) + 1
                for k in head..<entries.count { frame(entries[k], on: connection) }
                try connection.send()
                return
            } catch let failure as NATSError where failure.kind != .refused {
                reason = failure.reason
            } catch let failure as APIError {
                // JetStream answers with errors while it recovers its streams after a restart.
                reason = "JetStream: \(failure.description)"
            }
            connection?.close()
            connection = nil
            jetStream = nil
            let left = deadline - monotonicSeconds()
            if left <= 0 {
                throw NATSError(.unreachable, url: url.display, "the server stayed away for \(seconds(settings.reconnectFor)): \(reason)")
            }
            usleep(UInt32(min(left, 0.25) * 1_000_000))
        }
    }

    /// After a reconnect: which in-flight records did the stream take?
    private func reconcile(_ state: StreamState, _ jetStream: JetStream) throws {
        let last = state.lastSequence
        if last < acknowledgedSequence {
            throw NATSError(.refused, url: url.display, "the server lost acknowledged records: the bucket now ends at sequence \(last), \(acknowledgedSequence) had been acknowledged; resume from logsync position")
        }
        guard last > acknowledgedSequence else { return }
        guard last <= lastAssigned, let message = try jetStream.message(bucket.stream, sequence: last) else {
            throw NATSError(.refused, url: url.display, "another client wrote to the bucket while push ran (it ends at sequence \(last)); resume from logsync position")
        }
        let entry = entries[head + Int(last - entries[head].sequence)]
        let subject = String(decoding: UnsafeRawBufferPointer(start: held.base + entry.subject.lowerBound, count: entry.subject.count), as: UTF8.self)
        let cursor = message.headers.withUnsafeBytes { MessageHeaders($0).value(Bucket.cursorHeader).map(Array.init) }
        let expected = entry.cursor.map { Array(UnsafeRawBufferPointer(start: held.base + $0.lowerBound, count: $0.count)) }
        guard message.subject == subject, cursor == expected else {
            throw NATSError(.refused, url: url.display, "another client wrote to the bucket while push ran (sequence \(last) is not the record sent for it); resume from logsync position")
        }
        var k = head
        while k < entries.count, entries[k].sequence <= last {
            entries[k].acknowledged = true
            k += 1
        }
        let before = acknowledged
        while head < entries.count, entries[head].acknowledged {
            head += 1
            acknowledged += 1
        }
        if acknowledged > before {
            acknowledgedSequence = last
            acknowledgedCursor = expected
            lastProgress = monotonicSeconds()
        }
    }
}
