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

    // The paths below are the table (every CPU) and the carry-less multiply
    // kernel (x86 with PCLMULQDQ and SSE4.1), which the public API chooses
    // between by length; each is checked on its own, and against the other.

    /// Both paths' checksum of `bytes` (a slice of an array, so with an
    /// address even when empty); the kernel's is nil where it cannot run.
    private func bothPaths(_ bytes: UnsafeRawBufferPointer) -> (table: UInt32, kernel: UInt32?) {
        let base = bytes.baseAddress!
        let table = ~CRC32.tableFold(0xFFFF_FFFF, base, bytes.count)
        guard CRC32.hasKernel && bytes.count >= CRC32.kernelMinimum else { return (table, nil) }
        return (table, ~CRC32.kernelFold(0xFFFF_FFFF, base, bytes.count))
    }

    @Test("the kernel is used exactly where the CPU reports PCLMULQDQ and SSE4.1")
    func detection() throws {
        let cpuinfo = String(decoding: try FileDescriptor.readAll("/proc/cpuinfo"), as: UTF8.self)
        let flags = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ") ?? []
        #expect(CRC32.hasKernel == (flags.contains("pclmulqdq") && flags.contains("sse4_1")))
    }

    /// A named input, so that a failure names it rather than listing its bytes.
    struct LongVector: CustomTestStringConvertible, Sendable {
        let testDescription: String
        let bytes: [UInt8]
        let expected: UInt32
    }

    @Test("well-known values of inputs long enough for the kernel (zlib crc32), on both paths", arguments: [
        LongVector(testDescription: "0...255 four times", bytes: Array(0...255) + Array(0...255) + Array(0...255) + Array(0...255), expected: 0xb70b_4c26),
        LongVector(testDescription: "64 zeros", bytes: [UInt8](repeating: 0, count: 64), expected: 0x758d_6336),
        LongVector(testDescription: "4096 bytes 0xFF", bytes: [UInt8](repeating: 0xFF, count: 4096), expected: 0xf154_670a),
        LongVector(testDescription: "\"123456789\" ten times", bytes: utf8(String(repeating: "123456789", count: 10)), expected: 0xdf68_476a),
        LongVector(testDescription: "the quick brown fox three times",
                   bytes: utf8(String(repeating: "The quick brown fox jumps over the lazy dog", count: 3)), expected: 0xd996_91f3),
    ])
    func longKnownValues(vector: LongVector) {
        #expect(Reference.crc32(vector.bytes) == vector.expected, "the reference implementation itself")
        #expect(CRC32.checksum(vector.bytes) == vector.expected)
        vector.bytes.withUnsafeBytes { raw in
            let (table, kernel) = bothPaths(raw)
            #expect(table == vector.expected)
            if CRC32.hasKernel { #expect(kernel == vector.expected) }
        }
    }

    @Test("table and kernel agree on random buffers of every length 0...5000, at every alignment up to 300")
    func pathsAgree() {
        var rng = SplitMix64(seed: 0x15C0_FFEE)
        let data = rng.bytes(5000 + 16)
        var disagreements: [String] = []
        data.withUnsafeBytes { raw in
            for length in 0...5000 {
                // Every start for the short lengths; one, turning with the length, beyond.
                for start in length <= 300 ? Array(0..<16) : [length % 16] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    let (table, kernel) = bothPaths(slice)
                    let chosen = CRC32.checksum(slice)
                    if chosen != table || (kernel != nil && kernel != table) {
                        disagreements.append("start \(start) length \(length)")
                    }
                }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(10))")
    }

    @Test("both paths match the bitwise reference on random buffers around the kernel's block sizes")
    func pathsMatchReference() {
        var rng = SplitMix64(seed: 0x15)
        for length in [63, 64, 65, 79, 80, 81, 127, 128, 129, 191, 192, 193, 255, 256, 257, 1000, 4099] {
            let data = rng.bytes(length)
            let expected = Reference.crc32(data)
            data.withUnsafeBytes { raw in
                let (table, kernel) = bothPaths(raw)
                #expect(table == expected, "table, length \(length)")
                if let kernel { #expect(kernel == expected, "kernel, length \(length)") }
            }
        }
    }

    @Test("an input with a gap skipped (a record around its checksum field) matches the reference, at every length to 300, every gap start to 80 and every alignment")
    func skippingGap() {
        var rng = SplitMix64(seed: 0x101E_D)
        let data = rng.bytes(300 + 8 + 16)
        var disagreements: [String] = []
        data.withUnsafeBytes { raw in
            for gapLength in [4, 0, 8] {
                for length in 0...300 {
                    for gapAt in 0...min(length, 80) {
                        let start = (length &+ gapAt) % 16
                        let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length + gapLength)])
                        let gap = gapAt..<(gapAt + gapLength)
                        let expected = Reference.crc32(Array(bytes[..<gap.lowerBound]) + Array(bytes[gap.upperBound...]))
                        if CRC32.checksum(bytes, skipping: gap) != expected {
                            disagreements.append("gap \(gap) of \(length + gapLength) bytes at alignment \(start)")
                        }
                    }
                }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(10))")
    }

    @Test("header fields valid or not, the fast path and the field-by-field one agree", arguments: 0..<8)
    func headerPathsAgree(seed: UInt64) {
        var rng = SplitMix64(seed: 0x4EAD + seed)
        var disagreements = 0
        for _ in 0..<5000 {
            var header = Record.encode(type: rng.int(0...1) == 0 ? .put : .delete, key: Array("k\(rng.next())".utf8), value: [], timestamp: rng.next() >> 1)
            // One or two bytes of the first sixteen changed, or none.
            for _ in 0..<rng.int(0...2) { header[rng.int(0...15)] = UInt8(truncatingIfNeeded: rng.next()) }
            header.withUnsafeBytes { bytes in
                let fast = RecordHeader.parseValid(bytes, maxRecord: 1 << 16)
                let full = try? RecordHeader.parse(bytes, maxRecord: 1 << 16)
                if fast != nil && fast != full { disagreements += 1 }
                if fast == nil && full != nil { disagreements += 1 }
            }
        }
        #expect(disagreements == 0)
    }

    @Test("a running checksum continues across updates that switch between the paths")
    func streamingAcrossPaths() {
        var rng = SplitMix64(seed: 103)
        let data = rng.bytes(20_000)
        let expected = Reference.crc32(data)
        data.withUnsafeBytes { raw in
            for _ in 0..<50 {
                var crc = CRC32()
                var position = 0
                while position < data.count {
                    // Pieces either side of the kernel's minimum, some far above it.
                    let n = min(rng.int(0...(rng.int(0...3) == 0 ? 2000 : 150)), data.count - position)
                    crc.update(UnsafeRawBufferPointer(rebasing: raw[position..<(position + n)]))
                    position += n
                }
                #expect(crc.value == expected)
            }
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
