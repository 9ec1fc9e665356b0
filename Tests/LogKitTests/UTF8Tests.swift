@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

private func isValid(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { UTF8Validation.isValid($0) }
}

private func validPrefix(_ bytes: [UInt8]) -> Int {
    bytes.withUnsafeBytes { raw in
        raw.baseAddress.map { UTF8Validation.validPrefixLength($0, raw.count) } ?? 0
    }
}

@Suite("UTF8Validation")
struct UTF8ValidationTests {
    @Test("accepts ASCII, 2-, 3- and 4-byte sequences and the boundaries of each", arguments: [
        [UInt8](), Array("hello, world".utf8), [0x00], [0x7f],
        [0xc2, 0x80], [0xc3, 0xa9], [0xdf, 0xbf],  // U+0080, é, U+07FF
        [0xe0, 0xa0, 0x80], [0xe2, 0x82, 0xac], [0xed, 0x9f, 0xbf], [0xee, 0x80, 0x80], [0xef, 0xbf, 0xbf],  // U+0800, €, U+D7FF, U+E000, U+FFFF
        [0xf0, 0x90, 0x80, 0x80], [0xf0, 0x9f, 0x98, 0x80], [0xf3, 0xbf, 0xbf, 0xbf], [0xf4, 0x8f, 0xbf, 0xbf],  // U+10000, 😀, U+FFFFF, U+10FFFF
        Array("日本語 and ASCII mixed, é😀€ — long enough for the eight-byte path".utf8),
    ])
    func accepts(bytes: [UInt8]) {
        #expect(Reference.isUTF8(bytes), "the standard library agrees")
        #expect(isValid(bytes))
        #expect(validPrefix(bytes) == bytes.count)
    }

    @Test("rejects overlongs, surrogates, values above U+10FFFF, stray continuations, truncations, F5...FF", arguments: [
        [UInt8(0xc0), 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xf0, 0x80, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf],
        [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
        [0xf4, 0x90, 0x80, 0x80], [0xf7, 0xbf, 0xbf, 0xbf],
        [0x80], [0xbf], [0x61, 0x80, 0x62],
        [0xc3], [0xe2, 0x82], [0xe2], [0xf0, 0x9f, 0x98], [0xf0, 0x9f], [0xf0],
        [0xc3, 0x41], [0xe2, 0x41, 0xac], [0xe2, 0x82, 0x41], [0xf0, 0x9f, 0x41, 0x80], [0xf0, 0x9f, 0x98, 0x41],
        [0xf5, 0x80, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80], [0xfe], [0xff],
    ])
    func rejects(bytes: [UInt8]) {
        #expect(!Reference.isUTF8(bytes), "the standard library agrees")
        #expect(!isValid(bytes))
        // After eight ASCII bytes (the fast path) and before more text, still refused.
        let padded = Array("abcdefgh".utf8) + bytes + Array("tail".utf8)
        #expect(!isValid(padded))
        #expect(validPrefix(padded) == (0...padded.count).last { Reference.isUTF8(Array(padded[..<$0])) }!)
        #expect(validPrefix(padded) < padded.count)
    }

    @Test("bytes F5 through FF are never valid", arguments: 0xF5...0xFF)
    func neverValid(byte: Int) {
        #expect(!isValid([UInt8(byte)]))
        #expect(!isValid([UInt8(byte), 0x80, 0x80, 0x80]))
    }

    @Test("validPrefixLength stops at the first bad sequence")
    func prefixLength() {
        #expect(validPrefix(Array("é".utf8) + [0xff] + Array("é".utf8)) == 2)
        #expect(validPrefix(Array("abc".utf8) + [0xe2, 0x82]) == 3)
        #expect(validPrefix([0x80]) == 0)
        #expect(validPrefix(Array("0123456789".utf8) + [0xed, 0xa0, 0x80]) == 10)
    }

    @Test("random byte strings: same verdict and prefix as the standard library")
    func randomAgainstStandardLibrary() {
        var rng = SplitMix64(seed: 0x07F8)
        var valid = 0
        for _ in 0..<3000 {
            let length = rng.int(0...24)
            var bytes: [UInt8] = []
            while bytes.count < length {
                switch rng.int(0...5) {
                case 0: bytes.append(UInt8(rng.int(0...0x7F)))
                case 1: bytes.append(UInt8(rng.int(0x80...0xFF)))
                case 2: bytes += utf8(rng.string(maxScalars: 3))
                case 3: bytes.append(UInt8(rng.int(0x80...0xBF)))
                case 4: bytes.append([0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5][rng.int(0...9)])
                default: bytes += utf8(rng.string(maxScalars: 2))
                }
            }
            let expectedValid = Reference.isUTF8(bytes)
            if expectedValid { valid += 1 }
            #expect(isValid(bytes) == expectedValid, "\(hexString(bytes))")
            // The longest valid prefix, found the slow way.
            let expectedPrefix = (0...bytes.count).last { Reference.isUTF8(Array(bytes[..<$0])) }!
            #expect(validPrefix(bytes) == expectedPrefix, "\(hexString(bytes))")
        }
        #expect(valid > 100 && valid < 2900, "a mix of valid and invalid inputs")
    }

    @Test("every scalar boundary region encodes to something the validator accepts")
    func allScalarsSampled() {
        var failures: [UInt32] = []
        for value in stride(from: UInt32(0), through: 0x10FFFF, by: 97) {
            guard let scalar = Unicode.Scalar(value) else { continue }
            var text = ""
            text.unicodeScalars.append(scalar)
            if !isValid(utf8(text)) { failures.append(value) }
        }
        #expect(failures.isEmpty)
    }
}
