@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
@testable import LogCLI
import Testing

@Suite("CRC32")
struct CRC32Tests {
    @Test("check value of \"123456789\" is 0xcbf43926")
    func checkValue() {
        #expect(CRC32.checksum(utf8("123456789")) == 0xcbf4_3926)
        var crc = CRC32()
        crc.update(utf8("123456789"))
        #expect(crc.value == 0xcbf4_3926)
    }

    @Test("empty input is 0, whichever way it is given")
    func empty() {
        #expect(CRC32.checksum([]) == 0)
        #expect(CRC32().value == 0)
        var crc = CRC32()
        crc.update([])
        crc.update(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(crc.value == 0)
        #expect(CRC32.checksum(UnsafeRawBufferPointer(start: nil, count: 0)) == 0)
    }

    @Test("well-known values (zlib crc32)", arguments: [
        ("a", UInt32(0xe8b7_be43)),
        ("abc", 0x3524_41c2),
        ("The quick brown fox jumps over the lazy dog", 0x414f_a339),
        ("message digest", 0x2015_9d7f),
    ])
    func knownValues(text: String, expected: UInt32) {
        #expect(Reference.crc32(utf8(text)) == expected, "the reference implementation itself")
        #expect(CRC32.checksum(utf8(text)) == expected)
    }

    @Test("the reference implementation agrees with the contract's check value")
    func referenceSanity() {
        #expect(Reference.crc32(utf8("123456789")) == 0xcbf4_3926)
    }

    @Test("lengths 0...40 match a bitwise reference", arguments: 0...40)
    func lengthsAgainstReference(length: Int) {
        var rng = SplitMix64(seed: 0xC0FFEE &+ UInt64(length))
        let data = rng.bytes(length)
        #expect(CRC32.checksum(data) == Reference.crc32(data))
        let zeros = [UInt8](repeating: 0, count: length)
        #expect(CRC32.checksum(zeros) == Reference.crc32(zeros))
        let ones = [UInt8](repeating: 0xFF, count: length)
        #expect(CRC32.checksum(ones) == Reference.crc32(ones))
    }

    @Test("longer buffers (through the 16-byte loop many times) match the reference")
    func longBuffers() {
        var rng = SplitMix64(seed: 42)
        for length in [255, 256, 257, 1000, 4096, 65_537] {
            let data = rng.bytes(length)
            #expect(CRC32.checksum(data) == Reference.crc32(data), "length \(length)")
        }
    }

    @Test("unaligned start addresses give the same checksum")
    func unaligned() {
        var rng = SplitMix64(seed: 7)
        let data = rng.bytes(200)
        data.withUnsafeBytes { raw in
            for start in 0..<16 {
                for length in [0, 1, 15, 16, 17, 33, 100] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    #expect(CRC32.checksum(slice) == Reference.crc32(data[start..<(start + length)]),
                            "start \(start) length \(length)")
                }
            }
        }
    }

    @Test("two updates split at every position of a 100-byte buffer equal one shot")
    func splitAtEveryPosition() {
        var rng = SplitMix64(seed: 100)
        let data = rng.bytes(100)
        let expected = Reference.crc32(data)
        #expect(CRC32.checksum(data) == expected)
        for cut in 0...data.count {
            var crc = CRC32()
            crc.update(Array(data[..<cut]))
            crc.update(Array(data[cut...]))
            #expect(crc.value == expected, "cut at \(cut)")
        }
    }

    @Test("three updates at every pair of cut points of a 100-byte buffer equal one shot")
    func threeWaySplits() {
        var rng = SplitMix64(seed: 101)
        let data = rng.bytes(100)
        let expected = Reference.crc32(data)
        var failures = 0
        data.withUnsafeBytes { raw in
            for first in 0...data.count {
                for second in first...data.count {
                    var crc = CRC32()
                    crc.update(UnsafeRawBufferPointer(rebasing: raw[..<first]))
                    crc.update(UnsafeRawBufferPointer(rebasing: raw[first..<second]))
                    crc.update(UnsafeRawBufferPointer(rebasing: raw[second...]))
                    if crc.value != expected { failures += 1 }
                }
            }
        }
        #expect(failures == 0)
    }

    @Test("byte-at-a-time and random-sized updates equal one shot")
    func manySmallUpdates() {
        var rng = SplitMix64(seed: 102)
        let data = rng.bytes(10_000)
        let expected = Reference.crc32(data)
        var bytewise = CRC32()
        for b in data { bytewise.update([b]) }
        #expect(bytewise.value == expected)
        for _ in 0..<20 {
            var crc = CRC32()
            var position = 0
            while position < data.count {
                let n = min(rng.int(0...70), data.count - position)
                crc.update(Array(data[position..<(position + n)]))
                position += n
            }
            #expect(crc.value == expected)
        }
    }

    @Test("value can be read midway without disturbing the running checksum")
    func valueIsNonDestructive() {
        var crc = CRC32()
        crc.update(utf8("12345"))
        #expect(crc.value == Reference.crc32(utf8("12345")))
        crc.update(utf8("6789"))
        #expect(crc.value == 0xcbf4_3926)
    }
}
