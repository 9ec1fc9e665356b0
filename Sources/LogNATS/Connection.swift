// One TCP connection to a NATS server: the handshake, buffered writes,
// reads with a time limit, and the server's PINGs answered on the way.
//
// Every wait is bounded by the connection's timeout, so a server that stops
// answering is reported (`NATSError.Kind.lost`) instead of hanging the tool;
// the caller decides whether to reconnect.

import LogIO
import LogJSON
import Glibc

public struct NATSError: Error, Sendable {
    public enum Kind: Sendable {
        /// No connection could be made: refused, unreachable, no such host.
        case unreachable
        /// The connection broke or the server stopped answering.
        case lost
        /// Nothing answered a JetStream request: JetStream is off, or not
        /// ready yet after a restart.
        case unavailable
        /// The server said no: authorization, a protocol error, a JetStream error.
        case refused
    }
    public let kind: Kind
    public let url: String
    public let reason: String

    public init(_ kind: Kind, url: String, _ reason: String) {
        self.kind = kind
        self.url = url
        self.reason = reason
    }

    public var message: String { "\(url): \(reason)" }
}

public final class Connection {
    public let url: ServerURL
    /// Seconds to wait for the server at any one point.
    public let timeout: Double
    /// The largest message (headers and payload) the server takes.
    public private(set) var maxPayload = 1 << 20
    /// Replies to this connection's requests come to `inbox.*`.
    public let inbox: String
    public static let inboxSID: UInt64 = 1

    private let socket: Int32
    private let input = ByteBuffer(capacity: 1 << 20)
    /// Bytes of `input` already handed out; kept until the next read, since
    /// the operations handed out borrow them.
    private var consumed = 0
    private let output = ByteBuffer(capacity: 1 << 18)
    private var closed = false

    public init(url: ServerURL, timeout: Double) throws(NATSError) {
        self.url = url
        self.timeout = timeout
        var random = SystemRandomNumberGenerator()
        inbox = "_INBOX." + String(random.next() as UInt64, radix: 36) + String(random.next() as UInt32, radix: 36)
        socket = try Connection.connect(url, timeout: timeout)
        do {
            try handshake()
        } catch {
            Glibc.close(socket)
            closed = true
            throw error
        }
    }

    deinit { close() }

    public func close() {
        if !closed { Glibc.close(socket); closed = true }
    }

    public var descriptor: Int32 { socket }

    // MARK: Commands

    /// Queues a message; `send` writes what is queued.
    public func publish(subject: UnsafeRawBufferPointer, reply: UnsafeRawBufferPointer, headers: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) {
        if headers.isEmpty {
            output.append("PUB ")
        } else {
            output.append("HPUB ")
        }
        output.append(subject)
        output.append(" ")
        if !reply.isEmpty {
            output.append(reply)
            output.append(" ")
        }
        if !headers.isEmpty {
            output.append(decimal: UInt64(headers.count))
            output.append(" ")
        }
        output.append(decimal: UInt64(headers.count + payload.count))
        output.append("\r\n")
        output.append(headers)
        output.append(payload)
        output.append("\r\n")
    }

    public func publish(subject: String, reply: String, payload: [UInt8]) {
        Array(subject.utf8).withUnsafeBytes { subject in
            Array(reply.utf8).withUnsafeBytes { reply in
                payload.withUnsafeBytes { payload in
                    publish(subject: subject, reply: reply, headers: UnsafeRawBufferPointer(start: nil, count: 0), payload: payload)
                }
            }
        }
    }

    public func subscribe(_ subject: String, sid: UInt64) {
        output.append(Array("SUB \(subject) \(sid)\r\n".utf8))
    }

    public func unsubscribe(sid: UInt64) {
        output.append(Array("UNSUB \(sid)\r\n".utf8))
    }

    /// Bytes queued and not yet written.
    public var queued: Int { output.count }

    /// Writes everything queued.
    public func send() throws(NATSError) {
        var done = 0
        while done < output.count {
            let n = Glibc.send(socket, output.base + done, output.count - done, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw lost("the server took nothing for \(seconds(timeout))") }
                throw lost(String(cString: strerror(errno)))
            }
            done += n
        }
        output.removeAll()
    }

    // MARK: Reading

    /// The next message for one of this connection's subscriptions, waiting
    /// up to `wait` seconds (the timeout when nil); nil if none came in time.
    /// The message borrows the read buffer until the next call.
    public func nextMessage(wait: Double? = nil) throws(NATSError) -> Message? {
        let deadline = monotonicSeconds() + (wait ?? timeout)
        while true {
            if let message = try bufferedMessage() { return message }
            guard try readable(within: max(0, deadline - monotonicSeconds())) else { return nil }
            try readMore()
        }
    }

    /// The next message if one is already here or readable without waiting.
    public func pendingMessage() throws(NATSError) -> Message? {
        try nextMessage(wait: 0)
    }

    /// An operation already read, PINGs answered and notices skipped.
    private func bufferedMessage() throws(NATSError) -> Message? {
        while let operation = try parseBuffered() {
            switch operation {
            case .message(let message): return message
            case .ping:
                output.append("PONG\r\n")
                try send()
            case .pong, .ok, .info: continue
            case .error(let reason):
                throw NATSError(.refused, url: url.display, "server error: \(reason)")
            }
        }
        return nil
    }

    /// The next whole operation in the read buffer, if there is one.
    private func parseBuffered() throws(NATSError) -> ServerOperation? {
        do throws(ProtocolError) {
            guard let (operation, size) = try ProtocolParser.parse(UnsafeRawBufferPointer(start: input.base + consumed, count: input.count - consumed)) else { return nil }
            consumed += size
            return operation
        } catch {
            throw NATSError(.lost, url: url.display, "protocol error: \(error.reason)")
        }
    }

    /// The next operation, reading until `deadline`; `awaited` names it for
    /// the message if none comes.
    private func nextOperation(by deadline: Double, awaited: String) throws(NATSError) -> ServerOperation {
        while true {
            if let operation = try parseBuffered() { return operation }
            let left = deadline - monotonicSeconds()
            guard left > 0, try readable(within: left) else { throw lost("no \(awaited) within \(seconds(timeout))") }
            try readMore()
        }
    }

    private func readable(within seconds: Double) throws(NATSError) -> Bool {
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&descriptor, 1, Int32(min(seconds * 1000, Double(Int32.max)).rounded(.up)))
            if ready < 0 {
                if errno == EINTR { continue }
                throw lost("poll: \(String(cString: strerror(errno)))")
            }
            return ready > 0
        }
    }

    private func readMore() throws(NATSError) {
        input.keep(from: consumed)
        consumed = 0
        input.reserve(1 << 16)
        let room = input.capacity - input.count
        while true {
            let n = recv(socket, input.base + input.count, room, 0)
            if n < 0 {
                if errno == EINTR { continue }
                throw lost(String(cString: strerror(errno)))
            }
            if n == 0 { throw lost("the server closed the connection") }
            input.count += n
            return
        }
    }

    private func lost(_ reason: String) -> NATSError {
        NATSError(.lost, url: url.display, reason)
    }

    // MARK: Connecting

    private static func connect(_ url: ServerURL, timeout: Double) throws(NATSError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(url.host, String(url.port), &hints, &list)
        guard status == 0, let first = list else {
            throw NATSError(.unreachable, url: url.display, "cannot resolve \(url.host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            entry = address.pointee.ai_next
            let fd = Glibc.socket(address.pointee.ai_family, address.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), address.pointee.ai_protocol)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            if Glibc.connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) < 0 && errno != EINPROGRESS {
                lastError = String(cString: strerror(errno))
                Glibc.close(fd)
                continue
            }
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var ready: Int32
            repeat { ready = poll(&descriptor, 1, Int32(timeout * 1000)) } while ready < 0 && errno == EINTR
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if ready == 0 {
                lastError = "no answer to connect within \(seconds(timeout))"
            } else if getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length) < 0 || soError != 0 {
                lastError = String(cString: strerror(soError != 0 ? soError : errno))
            } else {
                // Blocking from here on, with a send time limit so a stalled
                // server cannot hang a write.
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
                var one: Int32 = 1
                _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
                _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
                return fd
            }
            Glibc.close(fd)
        }
        throw NATSError(.unreachable, url: url.display, "cannot connect: \(lastError.lowercasedFirst)")
    }

    /// INFO from the server, CONNECT and PING from us, PONG back: the server
    /// took the connection (an -ERR says why not).
    private func handshake() throws(NATSError) {
        let deadline = monotonicSeconds() + timeout
        let info: JSONValue
        switch try nextOperation(by: deadline, awaited: "INFO from the server") {
        case .info(let json):
            guard let parsed = try? JSONValue.parse(json) else { throw NATSError(.refused, url: url.display, "not a NATS server: its INFO is not JSON") }
            info = parsed
        case .error(let reason): throw NATSError(.refused, url: url.display, "server error: \(reason)")
        default: throw NATSError(.refused, url: url.display, "not a NATS server: it did not start with INFO")
        }
        if case .bool(true) = info["tls_required"] ?? .null {
            throw NATSError(.refused, url: url.display, "the server requires TLS, which logsync does not speak")
        }
        if case .bool(false) = info["headers"] ?? .bool(false) {
            throw NATSError(.refused, url: url.display, "the server does not support message headers (NATS 2.2 or later is needed)")
        }
        if let max = info["max_payload"]?.uint64 { maxPayload = Int(max) }

        var fields: [(String, JSONValue)] = [
            ("verbose", .bool(false)), ("pedantic", .bool(false)), ("name", .string("logsync")),
            ("lang", .string("swift")), ("version", .string("logkit")), ("protocol", .number("1")),
            ("headers", .bool(true)), ("no_responders", .bool(true)),
        ]
        if let user = url.user { fields.append(("user", .string(user))) }
        if let password = url.password { fields.append(("pass", .string(password))) }
        if let token = url.token { fields.append(("auth_token", .string(token))) }
        output.append(Array("CONNECT ".utf8))
        output.append(JSONValue.object(fields).serialized)
        output.append("\r\nPING\r\n")
        try send()
        var answered = false
        while !answered {
            switch try nextOperation(by: deadline, awaited: "answer to CONNECT") {
            case .pong: answered = true
            case .error(let reason): throw NATSError(.refused, url: url.display, "server refused the connection: \(reason)")
            default: break
            }
        }
        subscribe(inbox + ".*", sid: Connection.inboxSID)
        try send()
    }
}

public func monotonicSeconds() -> Double {
    Double(monotonicMicroseconds()) / 1_000_000
}

func seconds(_ value: Double) -> String {
    value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
}

extension String {
    var lowercasedFirst: String {
        guard let first else { return self }
        return first.lowercased() + dropFirst()
    }
}
