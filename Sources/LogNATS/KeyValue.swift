// A JetStream key-value bucket: stream `KV_<bucket>`, one subject per key,
// `$KV.<bucket>.<key>`; a put is a message, a delete a message with the
// header `KV-Operation: DEL` (or `PURGE`), the newest message of a subject is
// the key's state, `max_msgs_per_subject` the history kept.

import LogFormat
import LogIO
import LogJSON

/// logkit keys are any UTF-8; a NATS key is dot-separated non-empty tokens
/// of `A-Z a-z 0-9 - _ = /`. Bytes that cannot stand as they are become `=`
/// and two hex digits, so `=` marks an encoded key and a key made of the
/// plain bytes is its own encoding (readable by any other NATS client).
public enum KeyCodec {
    /// The longest encoded key sent: a subject must fit in the server's
    /// 4,096-byte control line with the reply subject and the sizes.
    public static let maxEncoded = 3000

    @inline(__always)
    static func isPlain(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "/"): true
        default: false
        }
    }

    /// Appends the encoding of `key` to `out`.
    public static func encode(_ key: UnsafeRawBufferPointer, into out: ByteBuffer) {
        let dot = UInt8(ascii: ".")
        let last = key.count - 1
        out.reserve(3 * key.count)
        for i in 0..<key.count {
            let byte = key[i]
            // A dot stays only between two other characters: the tokens
            // around it are then non-empty.
            if isPlain(byte) || (byte == dot && i > 0 && i < last && key[i - 1] != dot && key[i + 1] != dot) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "="))
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 0x0F))
            }
        }
    }

    public static func encode(_ key: [UInt8]) -> [UInt8] {
        let out = ByteBuffer()
        key.withUnsafeBytes { encode($0, into: out) }
        return Array(out.bytes)
    }

    /// The key an encoded key stands for. A key another client wrote with a
    /// `=` not followed by two upper-case hex digits, or one whose escapes do
    /// not make UTF-8, is taken as it is: no two keys decode to one.
    public static func decode(_ encoded: UnsafeRawBufferPointer, into out: ByteBuffer) {
        let start = out.count
        var i = 0
        while i < encoded.count {
            let byte = encoded[i]
            if byte == UInt8(ascii: "="), i + 2 < encoded.count, let high = hexValue(encoded[i + 1]), let low = hexValue(encoded[i + 2]) {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(byte)
                i += 1
            }
        }
        let decoded = UnsafeRawBufferPointer(start: out.base + start, count: out.count - start)
        if !UTF8Validation.isValid(decoded) {
            out.count = start
            out.append(encoded)
        }
    }

    public static func decode(_ encoded: [UInt8]) -> [UInt8] {
        let out = ByteBuffer()
        encoded.withUnsafeBytes { decode($0, into: out) }
        return Array(out.bytes)
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? nibble + 0x30 : nibble - 10 + 0x41
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - 0x30
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - 0x41 + 10
        default: nil
        }
    }
}

/// The names a bucket goes by, and what logsync asks of its stream.
public struct Bucket: Sendable {
    public let name: String
    public var stream: String { "KV_\(name)" }
    /// What precedes the encoded key in a subject.
    public var subjectPrefix: String { "$KV.\(name)." }

    public init(_ name: String) { self.name = name }

    /// The headers logsync adds to each message.
    public static let timestampHeader: StaticString = "Logkit-Timestamp"
    public static let cursorHeader: StaticString = "Logkit-Cursor"

    /// The stream a KV client creates for a bucket, as the KV clients do:
    /// limits retention, `history` messages per subject, rollups allowed,
    /// direct gets, deletes only through markers.
    public func streamConfig(history: Int, replicas: Int) -> JSONValue {
        .object([
            ("name", .string(stream)),
            ("subjects", .array([.string(subjectPrefix + ">")])),
            ("retention", .string("limits")),
            ("max_consumers", .number("-1")),
            ("max_msgs", .number("-1")),
            ("max_bytes", .number("-1")),
            ("max_age", .number("0")),
            ("max_msgs_per_subject", .number(String(history))),
            ("max_msg_size", .number("-1")),
            ("storage", .string("file")),
            ("discard", .string("new")),
            ("num_replicas", .number(String(replicas))),
            ("duplicate_window", .number("120000000000")),
            ("deny_delete", .bool(true)),
            ("deny_purge", .bool(false)),
            ("allow_rollup_hdrs", .bool(true)),
            ("allow_direct", .bool(true)),
        ])
    }

    /// The stream's state, creating the stream first if it does not exist.
    public func ensure(_ jetStream: JetStream, history: Int, replicas: Int) throws -> StreamState {
        if let state = try jetStream.streamState(stream) { return state }
        do {
            try jetStream.createStream(streamConfig(history: history, replicas: replicas), name: stream)
        } catch let error as APIError where error.errorCode == APIError.streamNameInUse {
            // Another client created it meanwhile; theirs is used.
        }
        guard let state = try jetStream.streamState(stream) else {
            throw NATSError(.refused, url: jetStream.connection.url.display, "the bucket's stream \(stream) vanished after it was created")
        }
        return state
    }

    /// How many sequence numbers `position` looks back over, past messages
    /// without a cursor (and sequences whose messages are gone).
    public static let positionSearch: UInt64 = 1000

    /// The cursor of the newest message that carries one, looking back past
    /// a few messages other clients wrote; nil for a missing or empty bucket.
    public func position(_ jetStream: JetStream) throws -> [UInt8]? {
        guard let state = try jetStream.streamState(stream), state.lastSequence > 0, state.messages > 0 else { return nil }
        var sequence = state.lastSequence
        let oldest = max(state.firstSequence, 1, state.lastSequence >= Bucket.positionSearch ? state.lastSequence - Bucket.positionSearch + 1 : 1)
        while sequence >= oldest {
            if let message = try jetStream.message(stream, sequence: sequence) {
                let found: [UInt8]? = message.headers.withUnsafeBytes { block in
                    MessageHeaders(block).value(Bucket.cursorHeader).map(Array.init)
                }
                if let found { return found }
            }
            sequence -= 1
        }
        throw NoCursor(url: jetStream.connection.url.display, from: oldest, to: state.lastSequence)
    }
}

/// A bucket whose newest messages carry no cursor: written by other clients,
/// or pushed from lines without addresses. There is nothing to resume from.
public struct NoCursor: Error, Sendable {
    public let url: String
    public let from: UInt64
    public let to: UInt64
    public var message: String {
        "\(url): no message from sequence \(from) to \(to) (the bucket's last) carries a logkit cursor (other clients wrote them, or push read lines without addresses); there is no position to resume from"
    }
}
