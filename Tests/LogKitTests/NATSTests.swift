@testable import LogIO
@testable import LogJSON
@testable import LogNATS
import Testing

/// Bytes nats-server 2.9.10 sent to a client, recorded off the wire: the
/// handshake, a JetStream API error, a stream created, publish
/// acknowledgements (one refused), a no-responders status, a stored message,
/// a consumer's deliveries with metadata and headers.
enum Recorded {
    static let info = #"INFO {"server_id":"NC7CNMTB","server_name":"NC7CNMTB","version":"2.9.10","proto":1,"go":"go1.19.8","host":"0.0.0.0","port":14222,"headers":true,"max_payload":1048576,"jetstream":true,"client_id":4,"client_ip":"127.0.0.1"} "# + "\r\n"
    static let streamNotFound = "MSG _INBOX.x.1 1 158\r\n" + #"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0}"# + "\r\n"
    static let acknowledgements = "MSG _INBOX.x.3 1  26\r\n" + #"{"stream":"KV_t", "seq":1}"# + "\r\n"
        + "MSG _INBOX.x.4 1  102\r\n" + #"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},"stream":"KV_t","seq":0}"# + "\r\n"
        + "MSG _INBOX.x.5 1  26\r\n" + #"{"stream":"KV_t", "seq":2}"# + "\r\n"
    static let noResponders = "HMSG _INBOX.x.6 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    static let delivery = "HMSG $KV.t.a 2 $JS.ACK.KV_t.kF2a15Cl.1.2.1.1795335884978714832.0 63 63\r\nNATS/1.0\r\nKV-Operation: DEL\r\nNats-Expected-Last-Sequence: 1\r\n\r\n\r\n"
        + "HMSG $KV.t.c 2 $JS.ACK.KV_t.kF2a15Cl.1.3.2.1795336673856398014.0 34 37\r\nNATS/1.0\r\nLogkit-Timestamp: 18\r\n\r\nxyz\r\n"
}

/// Every operation in `text`, described as strings.
func operations(_ text: String) throws -> [String] {
    let bytes = Array(text.utf8)
    return try bytes.withUnsafeBytes { raw in
        var found: [String] = []
        var at = 0
        while at < raw.count {
            guard let (operation, size) = try ProtocolParser.parse(UnsafeRawBufferPointer(rebasing: raw[at...])) else {
                found.append("incomplete")
                break
            }
            at += size
            switch operation {
            case .info(let json): found.append("INFO \(JSONValue.parseOrNil(json)?["version"]?.string ?? "?")")
            case .message(let m):
                var text = "MSG \(String(decoding: m.subject, as: UTF8.self)) sid=\(m.sid) reply=\(String(decoding: m.reply, as: UTF8.self)) payload=\(String(decoding: m.payload, as: UTF8.self))"
                if let status = m.headers.status { text += " status=\(status)" }
                found.append(text)
            case .ping: found.append("PING")
            case .pong: found.append("PONG")
            case .ok: found.append("+OK")
            case .error(let reason): found.append("-ERR \(reason)")
            }
        }
        return found
    }
}

extension JSONValue {
    static func parseOrNil(_ bytes: UnsafeRawBufferPointer) -> JSONValue? { try? parse(bytes) }
}

@Suite("NATS protocol parser")
struct ProtocolParserTests {
    @Test("the server's INFO, PING, PONG, +OK and -ERR")
    func controlLines() throws {
        #expect(try operations(Recorded.info + "PING\r\nPONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\n")
            == ["INFO 2.9.10", "PING", "PONG", "+OK", "-ERR Authorization Violation"])
        #expect(try operations("ping\r\npong\r\n") == ["PING", "PONG"], "operation names are case-insensitive")
    }

    @Test("JetStream acknowledgements: two spaces where the reply would be, a refused one between")
    func acknowledgements() throws {
        #expect(try operations(Recorded.acknowledgements) == [
            #"MSG _INBOX.x.3 sid=1 reply= payload={"stream":"KV_t", "seq":1}"#,
            #"MSG _INBOX.x.4 sid=1 reply= payload={"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},"stream":"KV_t","seq":0}"#,
            #"MSG _INBOX.x.5 sid=1 reply= payload={"stream":"KV_t", "seq":2}"#,
        ])
    }

    @Test("a status message without payload, and deliveries with headers and a reply")
    func headers() throws {
        #expect(try operations(Recorded.noResponders) == ["MSG _INBOX.x.6 sid=1 reply= payload= status=503"])
        #expect(try operations(Recorded.delivery) == [
            "MSG $KV.t.a sid=2 reply=$JS.ACK.KV_t.kF2a15Cl.1.2.1.1795335884978714832.0 payload=",
            "MSG $KV.t.c sid=2 reply=$JS.ACK.KV_t.kF2a15Cl.1.3.2.1795336673856398014.0 payload=xyz",
        ])
    }

    @Test("every prefix of the recording is incomplete, never misparsed")
    func prefixes() throws {
        let all = Recorded.info + Recorded.streamNotFound + Recorded.acknowledgements + Recorded.noResponders + Recorded.delivery
        let whole = try operations(all)
        let bytes = Array(all.utf8)
        for cut in 0..<bytes.count {
            let parsed = try operations(String(decoding: bytes[..<cut], as: UTF8.self))
            let complete = parsed.last == "incomplete" ? Array(parsed.dropLast()) : parsed
            #expect(Array(whole.prefix(complete.count)) == complete, "cut at \(cut)")
        }
    }

    @Test("malformed lines are protocol errors")
    func malformed() {
        for text in ["MSG a\r\n", "MSG a 1 x\r\n", "HMSG a 1 9 4\r\nxxxx\r\n", "WHAT\r\n", "MSG a 1 3\r\nabcXY"] {
            #expect(throws: ProtocolError.self, "\(text.debugDescription)") { _ = try operations(text) }
        }
    }

    @Test("header lookup ignores case and trims blanks")
    func headerLookup() {
        let block = Array("NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 12\r\nkv-operation:  DEL \r\n\r\n".utf8)
        block.withUnsafeBytes { raw in
            let headers = MessageHeaders(raw)
            #expect(headers.status == 100)
            #expect(headers.statusDescription == "Idle Heartbeat")
            #expect(headers.value("nats-last-consumer").map { Array($0) } == Array("12".utf8))
            #expect(headers.value("KV-Operation").map { Array($0) } == Array("DEL".utf8))
            #expect(headers.value("Missing") == nil)
        }
    }
}

@Suite("NATS key encoding")
struct KeyCodecTests {
    static let examples: [(String, String)] = [
        ("user-1_A", "user-1_A"), ("a/b", "a/b"), ("a.b.c", "a.b.c"),
        ("user name", "user=20name"), ("$home", "=24home"), ("a..b", "a=2E=2Eb"),
        (".a", "=2Ea"), ("a.", "a=2E"), (".", "=2E"), ("a=b", "a=3Db"), ("line\n", "line=0A"),
        ("é", "=C3=A9"), ("*", "=2A"), (">", "=3E"),
    ]

    @Test("encodings", arguments: examples)
    func encode(key: String, encoded: String) {
        #expect(String(decoding: KeyCodec.encode(Array(key.utf8)), as: UTF8.self) == encoded)
        #expect(KeyCodec.decode(Array(encoded.utf8)) == Array(key.utf8))
    }

    @Test("every encoding is a valid NATS key and decodes back; plain keys are their own")
    func randomKeys() {
        var random = SplitMix64(seed: 7)
        // logkit keys are UTF-8: pieces are whole characters.
        let alphabet = ["a", "b", ".", "=", "-", "_", "/", " ", "$", "\n", "\u{7F}", "é", "€"].map { Array($0.utf8) }
        for _ in 0..<5000 {
            let key = (0..<Int(random.next() % 12 + 1)).flatMap { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            let encoded = KeyCodec.encode(key)
            #expect(KeyCodec.decode(encoded) == key)
            let tokens = encoded.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            #expect(tokens.allSatisfy { !$0.isEmpty && $0.allSatisfy { KeyCodec.isPlain($0) || $0 == UInt8(ascii: "=") } })
            if !key.contains(UInt8(ascii: "=")) && key.allSatisfy({ KeyCodec.isPlain($0) }) { #expect(encoded == key) }
        }
    }

    @Test("another client's key with a stray '=' is taken as it is")
    func strayEquals() {
        #expect(KeyCodec.decode(Array("a=b".utf8)) == Array("a=b".utf8))
        #expect(KeyCodec.decode(Array("a=4".utf8)) == Array("a=4".utf8))
        #expect(KeyCodec.decode(Array("a=4x".utf8)) == Array("a=4x".utf8))
        #expect(KeyCodec.decode(Array("=41=".utf8)) == Array("A=".utf8))
        #expect(KeyCodec.decode(Array("lc=c3=a9".utf8)) == Array("lc=c3=a9".utf8), "only upper-case hex is an escape")
        #expect(KeyCodec.decode(Array("bad=FF".utf8)) == Array("bad=FF".utf8), "escapes that are not UTF-8 stay as they are")
        #expect(KeyCodec.decode(Array("bad=FE".utf8)) != KeyCodec.decode(Array("bad=FF".utf8)))
    }
}

@Suite("NATS URLs, acknowledgements and delivery metadata")
struct NATSPartsTests {
    @Test("URLs")
    func urls() throws {
        let plain = try ServerURL(parsing: "nats://127.0.0.1:4222/users")
        #expect(plain.host == "127.0.0.1" && plain.port == 4222 && plain.bucket == "users")
        #expect(try ServerURL(parsing: "nats://example.org/b").port == 4222)
        let credentials = try ServerURL(parsing: "nats://ann:secret@h:1/b")
        #expect(credentials.user == "ann" && credentials.password == "secret" && credentials.display == "nats://ann@h:1/b")
        #expect(try ServerURL(parsing: "nats://tok@h/b").token == "tok")
        #expect(try ServerURL(parsing: "nats://[::1]:5/b").host == "::1")
        for bad in ["http://h/b", "nats://h", "nats://h/", "nats://h/a.b", "nats://h:0/b", "nats://h:x/b", "nats:///b"] {
            #expect(throws: URLError.self, "\(bad)") { _ = try ServerURL(parsing: bad) }
        }
    }

    @Test("an acknowledgement's sequence, and a refusal's error")
    func acknowledgement() {
        Array(#"{"stream":"KV_t", "seq":1795}"#.utf8).withUnsafeBytes { raw in
            #expect(Publisher.storedSequence(raw) == 1795)
            #expect(Publisher.apiError(raw) == nil)
        }
        Array(#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},"stream":"KV_t","seq":0}"#.utf8).withUnsafeBytes { raw in
            #expect(Publisher.apiError(raw)?.errorCode == APIError.wrongLastSequence)
        }
    }

    @Test("delivery metadata in both reply-subject layouts")
    func metadata() {
        Array("$JS.ACK.KV_t.kF2a15Cl.1.3.2.1795336673856398014.7".utf8).withUnsafeBytes { raw in
            let m = AckMetadata(raw)
            #expect(m?.streamSequence == 3 && m?.consumerSequence == 2 && m?.pending == 7 && m?.timestamp == 1_795_336_673_856_398_014)
        }
        Array("$JS.ACK.hub.ACCHASH.KV_t.c.1.30.20.1795336673856398014.0.x9".utf8).withUnsafeBytes { raw in
            let m = AckMetadata(raw)
            #expect(m?.streamSequence == 30 && m?.consumerSequence == 20 && m?.pending == 0)
        }
        Array("_INBOX.abc.1".utf8).withUnsafeBytes { #expect(AckMetadata($0) == nil) }
    }
}
