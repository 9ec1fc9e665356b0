// Reads a bucket back: an ordered push consumer, as the KV clients' watchers
// do. It starts with the newest message of every key (`last_per_subject`),
// whose last one arrives with 0 pending; with `follow` it goes on with every
// later message. Messages come without acknowledgements, in stream order; a
// gap in the consumer's sequence, a silent server or a lost connection makes
// a new consumer that starts after the last stream sequence seen, so nothing
// is skipped. Flow-control requests are answered; idle heartbeats prove the
// server alive.

import LogIO
import LogJSON
import Glibc

/// One change of a key, as the bucket holds it.
public struct BucketEntry {
    public var isDelete: Bool
    /// The logkit key, decoded.
    public var key: UnsafeRawBufferPointer
    public var value: UnsafeRawBufferPointer
    /// Milliseconds since the epoch: the record's own, or when the server stored it.
    public var timestamp: UInt64
}

public final class Watcher {
    public let url: ServerURL
    public let bucket: Bucket
    private let timeout: Double
    private let reconnectFor: Double
    private let heartbeat = 2.0

    private var connection: Connection
    private var jetStream: JetStream
    private var consumerSID: UInt64 = 1
    private var deliverSubject = ""
    private var expectedConsumerSequence: UInt64 = 1
    private var lastStreamSequence: UInt64 = 0
    /// Whether the current consumer started with each key's newest message:
    /// until it has delivered them all, a delete is a key with no value, not
    /// a change to print.
    private var snapshotOnly = true
    private var snapshotComplete = false
    private var everyMessageIsNewest = false
    private let key = ByteBuffer(capacity: 4096)

    public init(url: ServerURL, timeout: Double, reconnectFor: Double) throws {
        self.url = url
        self.timeout = timeout
        self.reconnectFor = reconnectFor
        bucket = Bucket(url.bucket)
        connection = try Connection(url: url, timeout: timeout)
        jetStream = JetStream(connection)
        guard let state = try jetStream.streamState(bucket.stream) else {
            throw NATSError(.refused, url: url.display, "no bucket \(url.bucket) (no stream \(bucket.stream))")
        }
        // With one value per key every message is its key's newest, and the
        // server delivers them all faster than it picks the newest of each.
        everyMessageIsNewest = state.history == 1
    }

    /// Hands each entry to `deliver` until the newest value of every key was
    /// delivered, or, with `follow`, for ever. `idle` runs before each wait.
    public func run(follow: Bool, deliver: (BucketEntry) throws -> Void, idle: () throws -> Void) throws {
        try startConsumer()
        var lastHeard = monotonicSeconds()
        while true {
            if snapshotComplete && !follow { return }
            let message: Message?
            do {
                if let ready = try connection.nextMessage(wait: 0) {
                    message = ready
                } else {
                    try idle()
                    message = try connection.nextMessage(wait: heartbeat)
                }
            } catch let error as NATSError where error.kind == .lost {
                try reconnect(after: error)
                lastHeard = monotonicSeconds()
                continue
            }
            guard let message else {
                if monotonicSeconds() - lastHeard > max(3 * heartbeat, timeout) {
                    try reconnect(after: NATSError(.lost, url: url.display, "no heartbeat for \(seconds(max(3 * heartbeat, timeout)))"))
                    lastHeard = monotonicSeconds()
                }
                continue
            }
            lastHeard = monotonicSeconds()
            if message.sid == Connection.inboxSID {
                do {
                    try takeReply(message)
                } catch let error as APIError where error.errorCode != APIError.streamNotFound {
                    // JetStream refuses consumers while it recovers its streams
                    // after a restart: try again, within the reconnect time.
                    try reconnect(after: NATSError(.lost, url: url.display, "JetStream: \(error.description)"))
                } catch let error as APIError {
                    throw NATSError(.refused, url: url.display, "no bucket \(url.bucket) any more (\(error.description))")
                } catch let error as NATSError where error.kind == .unavailable {
                    try reconnect(after: error)
                }
            } else if message.sid == consumerSID {
                troubleSince = nil
                if try !take(message, deliver: deliver) { try restartConsumer() }
            }
        }
    }

    /// The consumer's delivery; false if a message was missed.
    private func take(_ message: Message, deliver: (BucketEntry) throws -> Void) throws -> Bool {
        if let status = message.headers.status {
            // 409: the consumer was deleted or the server is leaving; a new one takes over.
            if status == 409 { return false }
            guard status == 100 else {
                throw NATSError(.refused, url: url.display, "the consumer stopped: \(status) \(message.headers.statusDescription)")
            }
            if !message.reply.isEmpty {
                // A flow-control request: answering it lets more come.
                connection.publish(subject: message.reply, reply: UnsafeRawBufferPointer(start: nil, count: 0),
                                   headers: UnsafeRawBufferPointer(start: nil, count: 0), payload: UnsafeRawBufferPointer(start: nil, count: 0))
                try connection.send()
            }
            if let last = message.headers.value("Nats-Last-Consumer").flatMap(ProtocolParser.decimal), last >= expectedConsumerSequence {
                return false
            }
            return true
        }
        guard let metadata = AckMetadata(message.reply) else {
            throw NATSError(.refused, url: url.display, "a delivery without JetStream metadata on \(String(decoding: message.subject, as: UTF8.self))")
        }
        guard metadata.consumerSequence == expectedConsumerSequence else { return false }
        expectedConsumerSequence += 1
        lastStreamSequence = metadata.streamSequence
        let inSnapshot = snapshotOnly && !snapshotComplete
        if metadata.pending == 0 { snapshotComplete = true }

        let prefix = bucket.subjectPrefix.utf8.count
        guard message.subject.count > prefix else { return true }
        let operation = message.headers.value("KV-Operation")
        let isDelete = operation.map { $0.elementsEqual("DEL".utf8) || $0.elementsEqual("PURGE".utf8) } ?? false
        if isDelete && inSnapshot { return true }
        key.removeAll()
        KeyCodec.decode(UnsafeRawBufferPointer(rebasing: message.subject[prefix...]), into: key)
        let timestamp = message.headers.value(Bucket.timestampHeader).flatMap(ProtocolParser.decimal) ?? metadata.timestamp / 1_000_000
        try deliver(BucketEntry(isDelete: isDelete, key: key.bytes, value: isDelete ? UnsafeRawBufferPointer(start: nil, count: 0) : message.payload, timestamp: timestamp))
        return true
    }

    private var createReply = ""

    private func takeReply(_ message: Message) throws {
        guard message.subject.elementsEqual(createReply.utf8) else { return }
        let reply = try jetStream.decode(message, verb: "CONSUMER.CREATE")
        if reply["num_pending"]?.uint64 == 0 && expectedConsumerSequence == 1 { snapshotComplete = true }
    }

    private func startConsumer() throws {
        consumerSID += 1
        deliverSubject = "\(connection.inbox)D\(consumerSID)"
        connection.subscribe(deliverSubject, sid: consumerSID)
        expectedConsumerSequence = 1
        var config: [(String, JSONValue)] = [("deliver_subject", .string(deliverSubject))]
        if lastStreamSequence == 0 && snapshotOnly {
            config.append(("deliver_policy", .string(everyMessageIsNewest ? "all" : "last_per_subject")))
        } else {
            config.append(("deliver_policy", .string("by_start_sequence")))
            config.append(("opt_start_seq", .number(String(lastStreamSequence + 1))))
        }
        config += [
            ("ack_policy", .string("none")),
            ("max_deliver", .number("1")),
            ("filter_subject", .string(bucket.subjectPrefix + ">")),
            ("replay_policy", .string("instant")),
            ("flow_control", .bool(true)),
            ("idle_heartbeat", .number(String(UInt64(heartbeat * 1e9)))),
            ("headers_only", .bool(false)),
            ("mem_storage", .bool(true)),
            ("num_replicas", .number("1")),
            ("inactive_threshold", .number(String(UInt64(max(5, 4 * heartbeat) * 1e9)))),
        ]
        createReply = try jetStream.send("CONSUMER.CREATE.\(bucket.stream)", .object([
            ("stream_name", .string(bucket.stream)),
            ("config", .object(config)),
        ]))
    }

    /// A message was missed: a new consumer from after the last one seen,
    /// delivering every message (the first one's snapshot is no more).
    private func restartConsumer() throws {
        connection.unsubscribe(sid: consumerSID)
        snapshotOnly = false
        try startConsumer()
    }

    /// When the trouble reconnecting began; a delivery ends it.
    private var troubleSince: Double?

    private func reconnect(after error: NATSError) throws {
        connection.close()
        let start = troubleSince ?? monotonicSeconds()
        let deadline = start + reconnectFor
        var reason = error.reason
        if troubleSince != nil {
            // Trouble again before anything was delivered: wait a little
            // first, and give up once the reconnect time is over.
            let left = deadline - monotonicSeconds()
            if left <= 0 {
                throw NATSError(.unreachable, url: url.display, "no delivery for \(seconds(reconnectFor)): \(reason)")
            }
            usleep(UInt32(min(left, 0.25) * 1_000_000))
        }
        troubleSince = start
        while true {
            do {
                connection = try Connection(url: url, timeout: timeout)
                jetStream = JetStream(connection)
                snapshotOnly = snapshotOnly && lastStreamSequence == 0
                try startConsumer()
                return
            } catch let failure as NATSError where failure.kind != .refused {
                reason = failure.reason
            }
            let left = deadline - monotonicSeconds()
            if left <= 0 {
                throw NATSError(.unreachable, url: url.display, "the server stayed away for \(seconds(reconnectFor)): \(reason)")
            }
            usleep(UInt32(min(left, 0.25) * 1_000_000))
        }
    }
}

/// What JetStream puts in a delivered message's reply subject:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>`,
/// or with a domain and an account hash before the stream and a random token at the end.
struct AckMetadata {
    var streamSequence: UInt64
    var consumerSequence: UInt64
    var timestamp: UInt64
    var pending: UInt64

    init?(_ reply: UnsafeRawBufferPointer) {
        // The four numbers wanted are the last four tokens of the first
        // layout, or the four before the random token of the second.
        var ends: [Int] = []
        ends.reserveCapacity(12)
        for i in 0...reply.count where i == reply.count || reply[i] == UInt8(ascii: ".") {
            ends.append(i)
            if ends.count > 12 { return nil }
        }
        func token(_ k: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: reply[(k == 0 ? 0 : ends[k - 1] + 1)..<ends[k]])
        }
        guard ends.count == 9 || ends.count >= 11, token(0).elementsEqual("$JS".utf8), token(1).elementsEqual("ACK".utf8) else { return nil }
        let base = ends.count == 9 ? 5 : 7
        guard let stream = ProtocolParser.decimal(token(base)), let consumer = ProtocolParser.decimal(token(base + 1)),
              let timestamp = ProtocolParser.decimal(token(base + 2)), let pending = ProtocolParser.decimal(token(base + 3))
        else { return nil }
        streamSequence = stream
        consumerSequence = consumer
        self.timestamp = timestamp
        self.pending = pending
    }
}
