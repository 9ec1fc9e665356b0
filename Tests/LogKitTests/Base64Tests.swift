@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

@Suite("Base64")
struct Base64Tests {
    static let rfc4648: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    @Test("RFC 4648 test vectors encode", arguments: rfc4648)
    func encode(plain: String, encoded: String) {
        #expect(Base64.encode(utf8(plain)) == encoded)
        #expect(Base64.encodedLength(plain.utf8.count) == encoded.utf8.count)
    }

    @Test("RFC 4648 test vectors decode", arguments: rfc4648)
    func decode(plain: String, encoded: String) {
        #expect(Base64.decode(encoded) == utf8(plain))
    }

    @Test("the '+' and '/' characters of the standard alphabet")
    func alphabetEnd() {
        #expect(Base64.encode([0xfb, 0xff, 0xbf]) == "+/+/")
        #expect(Base64.decode("+/+/") == [0xfb, 0xff, 0xbf])
        #expect(Base64.encode([0xff]) == "/w==")
        #expect(Base64.encode([0, 0, 0]) == "AAAA")
    }

    @Test("encodedLength")
    func encodedLength() {
        for (n, expected) in [(0, 0), (1, 4), (2, 4), (3, 4), (4, 8), (5, 8), (6, 8), (7, 12), (300, 400)] {
            #expect(Base64.encodedLength(n) == expected, "\(n)")
        }
    }

    @Test("random bytes: encode matches a reference encoder and decode inverts it")
    func randomRoundTrip() {
        var rng = SplitMix64(seed: 0xBA5E)
        for length in 0..<200 {
            let data = rng.bytes(length)
            let encoded = Base64.encode(data)
            #expect(encoded == Reference.base64(data), "length \(length)")
            #expect(Base64.decode(encoded) == data, "length \(length)")
        }
    }

    @Test("decode into a ByteBuffer replaces what was there")
    func decodeIntoBuffer() {
        let buffer = ByteBuffer(capacity: 4)
        buffer.append(0x41)
        var text = "Zm9vYmFy"
        let ok = text.withUTF8 { Base64.decode(UnsafeRawBufferPointer($0), into: buffer) }
        #expect(ok)
        #expect(Array(buffer.bytes) == utf8("foobar"))
        var bad = "Zm9"
        #expect(!bad.withUTF8 { Base64.decode(UnsafeRawBufferPointer($0), into: buffer) })
    }

    @Test("strict decoding rejects a length that is not a multiple of four", arguments: ["Z", "Zg", "Zg=", "Zm9vY", "Zm9vYg", "Zm9vYg=", "Zg===", "Zm9v "])
    func badLength(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test("strict decoding rejects characters outside the alphabet", arguments: [
        "Zm9v!A==", "Zm-_", "Zm9v\nYmFy", "Zm 9", "Zm\t9", " Zm9", "Zm9\u{0}", "Zm9é", "Zm.v", "====",
    ])
    func badCharacters(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test("strict decoding rejects misplaced padding", arguments: [
        "=Zm9", "Z=m9", "Zg=a", "Zg==Zg==", "Zm9=Zm9v", "Z===", "Zm=v", "Zm9vYg==Zm9v", "Zg==\u{0}\u{0}\u{0}\u{0}",
    ])
    func misplacedPadding(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test("strict decoding rejects non-zero bits under the padding: one encoding per value", arguments: [
        "Zh==", "Zv==", "Zm9=", "Zm+=", "AB==", "AAB=", "Zm9vYh==",
    ])
    func nonCanonical(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test("the canonical encodings next to them are accepted")
    func canonical() {
        #expect(Base64.decode("Zg==") == utf8("f"))
        #expect(Base64.decode("Zm8=") == utf8("fo"))
        #expect(Base64.decode("AA==") == [0])
        #expect(Base64.decode("AAA=") == [0, 0])
        #expect(Base64.decode("Zm9vYg==") == utf8("foob"))
    }
}
