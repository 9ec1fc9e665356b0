// The NATS client protocol as bytes: a text protocol of CRLF-terminated
// control lines, some followed by a sized payload.
//
//   server: INFO {json} | MSG subject sid [reply] size | HMSG subject sid [reply] hsize tsize
//           | PING | PONG | +OK | -ERR 'reason'
//   client: CONNECT {json} | PUB subject [reply] size | HPUB subject [reply] hsize tsize
//           | SUB subject sid | UNSUB sid | PING | PONG
//
// Operation names are case-insensitive and fields are separated by one or
// more spaces or tabs (JetStream's acknowledgements come as `MSG inbox 1  26`,
// with two). A header block is `NATS/1.0[ status[ description]]\r\n`, then
// `Name: value\r\n` lines and an empty line; its size counts toward tsize.
//
// The parser never copies: an operation's fields are byte ranges of the read
// buffer, valid until the next read.

import LogIO
import Glibc

/// A message as a server delivers it.
public struct Message {
    public var subject: UnsafeRawBufferPointer
    public var sid: UInt64
    /// Empty when the message has no reply subject.
    public var reply: UnsafeRawBufferPointer
    /// The whole header block of an HMSG; empty for a MSG.
    public var headers: MessageHeaders
    public var payload: UnsafeRawBufferPointer
}

public enum ServerOperation {
    case info(json: UnsafeRawBufferPointer)
    case message(Message)
    case ping
    case pong
    case ok
    case error(reason: String)
}

public struct ProtocolError: Error, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}

public enum ProtocolParser {
    /// The longest control line taken from a server: INFO lists cluster
    /// addresses and can be long; a MSG line is at most a subject and a reply.
    public static let maxControlLine = 1 << 16

    /// The operation at the start of `bytes` and how many bytes it took, or
    /// nil if it has not all arrived yet.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(ProtocolError) -> (ServerOperation, Int)? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        guard let newline = memchr(base, 0x0A, min(bytes.count, maxControlLine)) else {
            if bytes.count >= maxControlLine { throw ProtocolError("a control line longer than \(maxControlLine) bytes") }
            return nil
        }
        let lineEnd = UnsafeRawPointer(newline) - base
        var line = UnsafeRawBufferPointer(rebasing: bytes[0..<lineEnd])
        if line.last == 0x0D { line = UnsafeRawBufferPointer(rebasing: line.dropLast()) }
        let afterLine = lineEnd + 1
        var fields = Fields(line)
        guard let name = fields.next() else { throw ProtocolError("an empty control line") }

        switch upper(name) {
        case "MSG", "HMSG":
            let withHeaders = upper(name) == "HMSG"
            var parts: [UnsafeRawBufferPointer] = []
            while let field = fields.next(), parts.count < 5 { parts.append(field) }
            let needed = withHeaders ? 4 : 3
            guard parts.count == needed || parts.count == needed + 1 else {
                throw ProtocolError("a \(withHeaders ? "HMSG" : "MSG") line with \(parts.count + 1) fields: \(printable(line))")
            }
            let hasReply = parts.count == needed + 1
            guard let sid = decimal(parts[1]),
                  let total = decimal(parts[parts.count - 1]),
                  let headerSize = withHeaders ? decimal(parts[parts.count - 2]) : 0,
                  headerSize <= total
            else { throw ProtocolError("malformed sizes: \(printable(line))") }
            let end = afterLine + Int(total) + 2
            guard bytes.count >= end else { return nil }
            guard bytes[end - 2] == 0x0D, bytes[end - 1] == 0x0A else {
                throw ProtocolError("a payload not followed by CRLF: \(printable(line))")
            }
            let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[afterLine..<(afterLine + Int(headerSize))])
            let message = Message(
                subject: parts[0], sid: sid,
                reply: hasReply ? parts[2] : UnsafeRawBufferPointer(start: base, count: 0),
                headers: MessageHeaders(headerBytes),
                payload: UnsafeRawBufferPointer(rebasing: bytes[(afterLine + Int(headerSize))..<(afterLine + Int(total))]))
            return (.message(message), end)
        case "PING": return (.ping, afterLine)
        case "PONG": return (.pong, afterLine)
        case "+OK": return (.ok, afterLine)
        case "-ERR":
            var reason = String(decoding: UnsafeRawBufferPointer(rebasing: line[(name.count)...]), as: UTF8.self)
            reason = reason.trimmingWhitespace()
            if reason.hasPrefix("'") && reason.hasSuffix("'") && reason.count >= 2 { reason = String(reason.dropFirst().dropLast()) }
            return (.error(reason: reason), afterLine)
        case "INFO":
            let json = UnsafeRawBufferPointer(rebasing: line[(name.count)...])
            return (.info(json: json), afterLine)
        default:
            throw ProtocolError("an unknown operation: \(printable(line))")
        }
    }

    /// The fields of a control line, split at runs of spaces and tabs.
    struct Fields {
        let line: UnsafeRawBufferPointer
        var i = 0
        init(_ line: UnsafeRawBufferPointer) { self.line = line }

        mutating func next() -> UnsafeRawBufferPointer? {
            while i < line.count, line[i] == 0x20 || line[i] == 0x09 { i += 1 }
            guard i < line.count else { return nil }
            let start = i
            while i < line.count, line[i] != 0x20, line[i] != 0x09 { i += 1 }
            return UnsafeRawBufferPointer(rebasing: line[start..<i])
        }
    }

    static func upper(_ bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: bytes.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
    }

    /// A decimal of at most 19 digits (it fits in 64 bits), or nil.
    public static func decimal(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + UInt64(byte - 0x30)
        }
        return value
    }

    /// A control line for a message: at most 200 bytes, bytes other than
    /// printable ASCII as `\xHH`.
    static func printable(_ line: UnsafeRawBufferPointer) -> String {
        var text = ""
        for byte in line.prefix(200) {
            if byte >= 0x20 && byte < 0x7F { text.unicodeScalars.append(Unicode.Scalar(byte)) } else { text += "\\x" + String(byte, radix: 16) }
        }
        return text
    }
}

/// A message's header block, read in place. Few messages carry more than a
/// handful of headers, so a lookup walks the lines.
public struct MessageHeaders {
    public let block: UnsafeRawBufferPointer

    public init(_ block: UnsafeRawBufferPointer) { self.block = block }

    public var isEmpty: Bool { block.isEmpty }

    /// The status of a status message (`NATS/1.0 503`, `NATS/1.0 100 Idle
    /// Heartbeat`): a server's notice, not a published message.
    public var status: Int? {
        var lines = Lines(block)
        guard let first = lines.next() else { return nil }
        var fields = ProtocolParser.Fields(first)
        _ = fields.next()
        guard let code = fields.next(), code.count == 3, let value = ProtocolParser.decimal(code) else { return nil }
        return Int(value)
    }

    /// The status line's text after the code (`Idle Heartbeat`).
    public var statusDescription: String {
        var lines = Lines(block)
        guard let first = lines.next() else { return "" }
        var fields = ProtocolParser.Fields(first)
        _ = fields.next()
        _ = fields.next()
        return String(decoding: UnsafeRawBufferPointer(rebasing: first[fields.i...]), as: UTF8.self).trimmingWhitespace()
    }

    /// The first value of header `name` (compared without regard to ASCII
    /// case), with the blanks around it removed.
    public func value(_ name: StaticString) -> UnsafeRawBufferPointer? {
        let wanted = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        var lines = Lines(block)
        _ = lines.next()
        while let line = lines.next() {
            guard line.count > wanted.count, line[wanted.count] == UInt8(ascii: ":") else { continue }
            var same = true
            for k in 0..<wanted.count where lowercased(line[k]) != lowercased(wanted[k]) { same = false; break }
            guard same else { continue }
            var start = wanted.count + 1
            var end = line.count
            while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
            while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
            return UnsafeRawBufferPointer(rebasing: line[start..<end])
        }
        return nil
    }

    @inline(__always)
    private func lowercased(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }

    /// The block's non-empty lines, without their line ends.
    struct Lines {
        let block: UnsafeRawBufferPointer
        var start = 0
        init(_ block: UnsafeRawBufferPointer) { self.block = block }

        mutating func next() -> UnsafeRawBufferPointer? {
            while start < block.count {
                var end = start
                while end < block.count, block[end] != 0x0A { end += 1 }
                var line = UnsafeRawBufferPointer(rebasing: block[start..<end])
                start = end + 1
                if line.last == 0x0D { line = UnsafeRawBufferPointer(rebasing: line.dropLast()) }
                if !line.isEmpty { return line }
            }
            return nil
        }
    }
}

/// Formatting of the commands a client sends, straight into a buffer.
extension ByteBuffer {
    func append(_ text: StaticString) {
        append(text.utf8Start, text.utf8CodeUnitCount)
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress { append(base, bytes.count) }
    }

    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    func append(decimal value: UInt64) {
        withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { scratch in
            var n = value
            var i = scratch.count
            repeat {
                i -= 1
                scratch[i] = UInt8(truncatingIfNeeded: n % 10) + 0x30
                n /= 10
            } while n > 0
            append(UnsafeRawBufferPointer(rebasing: scratch[i...]))
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars = scalars.dropFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
