// JetStream's API: JSON requests published to `$JS.API.<verb>` with a reply
// subject, answered by one JSON message, `{"error":{"code":404,"err_code":
// 10059,"description":"stream not found"},...}` when it failed. With
// `no_responders` in CONNECT, a request nobody serves (JetStream off) is
// answered at once by an empty message with status 503.

import LogIO
import LogJSON

/// An error JetStream answered with.
public struct APIError: Error, Sendable {
    public let code: Int
    /// JetStream's own error number (`err_code`), stable across versions.
    public let errorCode: Int
    public let description: String
    /// The server's URL, once known.
    public var url = ""

    public var message: String { "\(url): JetStream: \(description) (error \(errorCode))" }

    public static let streamNotFound = 10059
    public static let streamNameInUse = 10058
    public static let noMessageFound = 10037
    public static let wrongLastSequence = 10071
    public static let wrongLastMessageID = 10070

    /// The `error` object of a reply, if it has one.
    public init?(reply: JSONValue) {
        guard let error = reply["error"] else { return nil }
        code = error["code"]?.uint64.map(Int.init) ?? 0
        errorCode = error["err_code"]?.uint64.map(Int.init) ?? 0
        description = error["description"]?.string ?? "unknown error"
    }

    public init(code: Int, errorCode: Int, description: String) {
        self.code = code
        self.errorCode = errorCode
        self.description = description
    }
}

/// The part of a stream's state logsync needs.
public struct StreamState: Sendable {
    public var firstSequence: UInt64
    public var lastSequence: UInt64
    public var messages: UInt64
    /// Values kept per key (`max_msgs_per_subject`; 0 or less: no limit).
    public var history: Int64
}

/// One stored message, as `STREAM.MSG.GET` returns it.
public struct StoredMessage {
    public var subject: String
    public var sequence: UInt64
    public var headers: [UInt8]
    public var data: [UInt8]
}

public final class JetStream {
    public let connection: Connection
    private var requests: UInt64 = 0

    public init(_ connection: Connection) {
        self.connection = connection
    }

    /// Sends a request without waiting; its reply comes to the subject returned.
    public func send(_ verb: String, _ body: JSONValue?) throws(NATSError) -> String {
        requests += 1
        let reply = "\(connection.inbox).r\(requests)"
        connection.publish(subject: "$JS.API." + verb, reply: reply, payload: body?.serialized ?? [])
        try connection.send()
        return reply
    }

    /// The reply to a request as JSON; an `error` in it is thrown as APIError.
    public func decode(_ message: Message, verb: String) throws -> JSONValue {
        if message.headers.status == 503 {
            throw NATSError(.unavailable, url: connection.url.display, "JetStream is not answering (is it enabled on the server?): no responder for $JS.API.\(verb)")
        }
        let reply: JSONValue
        do {
            reply = try JSONValue.parse(message.payload)
        } catch {
            throw NATSError(.refused, url: connection.url.display, "a reply to $JS.API.\(verb) that is not JSON")
        }
        if var error = APIError(reply: reply) {
            error.url = connection.url.display
            throw error
        }
        return reply
    }

    /// A request and its reply; messages for other subscriptions that come
    /// meanwhile are dropped, so it is for when none are expected.
    public func request(_ verb: String, _ body: JSONValue? = nil) throws -> JSONValue {
        let reply = try send(verb, body)
        let deadline = monotonicSeconds() + connection.timeout
        while true {
            let left = deadline - monotonicSeconds()
            guard left > 0, let message = try connection.nextMessage(wait: left) else {
                throw NATSError(.lost, url: connection.url.display, "no answer to $JS.API.\(verb) within \(seconds(connection.timeout))")
            }
            if message.subject.elementsEqual(reply.utf8) { return try decode(message, verb: verb) }
        }
    }

    /// The stream's state, or nil if there is no such stream.
    public func streamState(_ stream: String) throws -> StreamState? {
        do {
            let reply = try request("STREAM.INFO.\(stream)")
            guard let state = reply["state"] else { throw malformed("STREAM.INFO") }
            return StreamState(
                firstSequence: state["first_seq"]?.uint64 ?? 0,
                lastSequence: state["last_seq"]?.uint64 ?? 0,
                messages: state["messages"]?.uint64 ?? 0,
                history: reply["config"]?["max_msgs_per_subject"].flatMap { if case .number(let n) = $0 { Int64(n) } else { nil } } ?? -1)
        } catch let error as APIError where error.errorCode == APIError.streamNotFound {
            return nil
        }
    }

    public func createStream(_ config: JSONValue, name: String) throws {
        _ = try request("STREAM.CREATE.\(name)", config)
    }

    /// The message with sequence `sequence`, or nil if it was deleted (or never was).
    public func message(_ stream: String, sequence: UInt64) throws -> StoredMessage? {
        do {
            let reply = try request("STREAM.MSG.GET.\(stream)", .object([("seq", .number(String(sequence)))]))
            guard let message = reply["message"], let subject = message["subject"]?.string else { throw malformed("STREAM.MSG.GET") }
            return StoredMessage(
                subject: subject, sequence: message["seq"]?.uint64 ?? sequence,
                headers: message["hdrs"]?.string.flatMap(Base64.decode) ?? [],
                data: message["data"]?.string.flatMap(Base64.decode) ?? [])
        } catch let error as APIError where error.errorCode == APIError.noMessageFound {
            return nil
        }
    }

    private func malformed(_ verb: String) -> NATSError {
        NATSError(.refused, url: connection.url.display, "an unexpected reply to $JS.API.\(verb)")
    }
}
