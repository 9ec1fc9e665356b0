// CRC-32 with the IEEE 802.3 polynomial, reflected: the checksum zlib's
// `crc32` computes, so any zlib binding can verify a logkit record.
//
// Where the CPU has carry-less multiplication (x86 with PCLMULQDQ), inputs of
// `kernelMinimum` bytes or more go to the folding kernel in CLogCRC, several
// times faster than any table; the table takes their last few bytes, shorter
// inputs and everything on other CPUs. A record of up to 256 bytes, header
// and payload taken as one input around the checksum field between them,
// goes whole to a short kernel that folds all its blocks at once.
//
// The table is slicing-by-16: sixteen 256-entry tables let the loop fold 16
// input bytes per iteration with independent lookups, instead of one byte per
// dependent step. The 16 KiB of tables stay in L1 while a segment is scanned.

internal import CLogCRC

public struct CRC32: Sendable {
    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    public var value: UInt32 { ~state }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        state = CRC32.fold(state, base, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32()
        crc.update(bytes)
        return crc.value
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The checksum of `bytes` without the `gap` inside them: a record's
    /// covers its header up to the checksum field and everything after it.
    /// A record of up to 256 bytes (the field not counted) is one call of the
    /// kernel, its last partial block included.
    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, skipping gap: Range<Int>) -> UInt32 {
        let total = bytes.count &- gap.count
        if gap.lowerBound >= 16 && total <= 256 && hasKernel, let base = bytes.baseAddress {
            return logkit_crc32_clmul_skipping(base, bytes.count, gap.lowerBound, gap.count)
        }
        var crc = CRC32()
        crc.update(UnsafeRawBufferPointer(rebasing: bytes[..<gap.lowerBound]))
        crc.update(UnsafeRawBufferPointer(rebasing: bytes[gap.upperBound...]))
        return crc.value
    }

    // Written once, during the thread-safe lazy initialisation, then only read.
    nonisolated(unsafe) private static let tables: UnsafePointer<UInt32> = makeTables()

    private static func makeTables() -> UnsafePointer<UInt32> {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 16 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<16 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return UnsafePointer(t)
    }

    @inline(__always)
    private static func loadLE(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
        UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// Whether this CPU runs the kernel, decided before main.
    @inline(__always)
    static var hasKernel: Bool { logkit_crc32_clmul_available() }

    /// The kernel's own minimum, and no higher threshold is needed: at 64
    /// bytes the kernel already runs at about twice the table's speed.
    static var kernelMinimum: Int { 64 }

    private static func fold(_ initial: UInt32, _ base: UnsafeRawPointer, _ count: Int) -> UInt32 {
        count >= kernelMinimum && hasKernel ? kernelFold(initial, base, count) : tableFold(initial, base, count)
    }

    /// The kernel over the whole 16-byte blocks, the table over the rest.
    /// Needs `count >= kernelMinimum` and `hasKernel`.
    static func kernelFold(_ initial: UInt32, _ base: UnsafeRawPointer, _ count: Int) -> UInt32 {
        let blocks = count & ~15
        let crc = logkit_crc32_clmul(initial, base, blocks)
        return tableFold(crc, base + blocks, count &- blocks)
    }

    static func tableFold(_ initial: UInt32, _ base: UnsafeRawPointer, _ count: Int) -> UInt32 {
        let t = tables
        @inline(__always) func at(_ table: Int, _ byte: UInt32) -> UInt32 {
            t[table &* 256 &+ Int(byte & 0xFF)]
        }
        var crc = initial
        var p = base
        var remaining = count
        while remaining >= 16 {
            let w0 = crc ^ loadLE(p, 0)
            let w1 = loadLE(p, 4)
            let w2 = loadLE(p, 8)
            let w3 = loadLE(p, 12)
            crc = at(15, w0) ^ at(14, w0 >> 8) ^ at(13, w0 >> 16) ^ at(12, w0 >> 24)
                ^ at(11, w1) ^ at(10, w1 >> 8) ^ at(9, w1 >> 16) ^ at(8, w1 >> 24)
                ^ at(7, w2) ^ at(6, w2 >> 8) ^ at(5, w2 >> 16) ^ at(4, w2 >> 24)
                ^ at(3, w3) ^ at(2, w3 >> 8) ^ at(1, w3 >> 16) ^ at(0, w3 >> 24)
            p += 16
            remaining &-= 16
        }
        // The same tables fold 8 and 4 bytes, so what the loop leaves (8 bytes
        // of every record's 24-byte header) takes at most 3 dependent byte
        // steps, not up to 15.
        if remaining >= 8 {
            let w0 = crc ^ loadLE(p, 0)
            let w1 = loadLE(p, 4)
            crc = at(7, w0) ^ at(6, w0 >> 8) ^ at(5, w0 >> 16) ^ at(4, w0 >> 24)
                ^ at(3, w1) ^ at(2, w1 >> 8) ^ at(1, w1 >> 16) ^ at(0, w1 >> 24)
            p += 8
            remaining &-= 8
        }
        if remaining >= 4 {
            let w0 = crc ^ loadLE(p, 0)
            crc = at(3, w0) ^ at(2, w0 >> 8) ^ at(1, w0 >> 16) ^ at(0, w0 >> 24)
            p += 4
            remaining &-= 4
        }
        while remaining > 0 {
            crc = (crc >> 8) ^ at(0, crc ^ UInt32(p.load(as: UInt8.self)))
            p += 1
            remaining &-= 1
        }
        return crc
    }
}
