// Where a bucket lives: nats://[USER:PASSWORD@|TOKEN@]HOST[:PORT]/BUCKET.

public struct ServerURL: Sendable, Equatable {
    public var host: String
    public var port: UInt16
    public var bucket: String
    public var user: String?
    public var password: String?
    public var token: String?

    /// The URL as messages name it: without the password or token.
    public var display: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let credentials = user.map { "\($0)@" } ?? ""
        return "nats://\(credentials)\(hostPart):\(port)/\(bucket)"
    }

    public init(parsing text: String) throws(URLError) {
        guard text.hasPrefix("nats://") else { throw URLError(text: text, reason: "not a nats:// URL") }
        var rest = Substring(text.dropFirst("nats://".count))
        guard let slash = rest.firstIndex(of: "/") else {
            throw URLError(text: text, reason: "no bucket: the URL ends with /BUCKET")
        }
        bucket = String(rest[rest.index(after: slash)...])
        rest = rest[..<slash]
        guard !bucket.isEmpty, bucket.utf8.allSatisfy(ServerURL.isBucketByte) else {
            throw URLError(text: text, reason: "a bucket name is one or more of A-Z a-z 0-9 - _")
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = String(credentials[..<colon])
                password = String(credentials[credentials.index(after: colon)...])
            } else {
                token = String(credentials)
            }
        }
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw URLError(text: text, reason: "an unclosed [ in the host") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw URLError(text: text, reason: "unexpected text after the host")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        } else {
            host = String(rest)
        }
        guard !host.isEmpty else { throw URLError(text: text, reason: "no host") }
        if let portText {
            guard let value = UInt16(portText), value > 0 else { throw URLError(text: text, reason: "the port is not a number from 1 to 65535") }
            port = value
        } else {
            port = 4222
        }
    }

    static func isBucketByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"): true
        default: false
        }
    }
}

public struct URLError: Error, Sendable {
    public let text: String
    public let reason: String
    public var message: String { "\(text): \(reason)" }
}
