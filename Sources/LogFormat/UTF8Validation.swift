// UTF-8 validation on raw bytes (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF). Keys must be UTF-8; a value that is not is printed
// as base64. Most data is ASCII, so eight bytes are checked per step until a
// high bit shows up.

public enum UTF8Validation {
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        return validPrefixLength(base, bytes.count) == bytes.count
    }

    /// The length of the longest prefix that is whole, valid UTF-8 sequences.
    public static func validPrefixLength(_ p: UnsafeRawPointer, _ count: Int) -> Int {
        let highBits: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        // Whole ASCII words first; the last word overlaps the one before it,
        // so a 12-byte key is two loads. The sequence walk below goes on from
        // the first word that is not ASCII.
        if count >= 8 {
            while i &+ 8 < count, p.loadUnaligned(fromByteOffset: i, as: UInt64.self) & highBits == 0 { i &+= 8 }
            if i &+ 8 >= count, p.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self) & highBits == 0 { return count }
        }
        while i < count {
            if i &+ 8 <= count {
                let word = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                if word & highBits == 0 { i &+= 8; continue }
            }
            let lead = p.load(fromByteOffset: i, as: UInt8.self)
            if lead < 0x80 { i &+= 1; continue }
            let length = sequenceLength(p, i, count, lead)
            if length == 0 { return i }
            i &+= length
        }
        return count
    }

    /// The length of the multi-byte sequence starting with `lead` at `i`, or 0.
    @inline(__always)
    package static func sequenceLength(_ p: UnsafeRawPointer, _ i: Int, _ count: Int, _ lead: UInt8) -> Int {
        @inline(__always) func byte(_ k: Int) -> UInt8 { p.load(fromByteOffset: i &+ k, as: UInt8.self) }
        @inline(__always) func isContinuation(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }
        switch lead {
        case 0xC2...0xDF:
            guard i &+ 2 <= count, isContinuation(byte(1)) else { return 0 }
            return 2
        case 0xE0...0xEF:
            guard i &+ 3 <= count else { return 0 }
            let b1 = byte(1)
            let secondOK: Bool
            switch lead {
            case 0xE0: secondOK = (0xA0...0xBF).contains(b1)
            case 0xED: secondOK = (0x80...0x9F).contains(b1)
            default: secondOK = isContinuation(b1)
            }
            guard secondOK, isContinuation(byte(2)) else { return 0 }
            return 3
        case 0xF0...0xF4:
            guard i &+ 4 <= count else { return 0 }
            let b1 = byte(1)
            let secondOK: Bool
            switch lead {
            case 0xF0: secondOK = (0x90...0xBF).contains(b1)
            case 0xF4: secondOK = (0x80...0x8F).contains(b1)
            default: secondOK = isContinuation(b1)
            }
            guard secondOK, isContinuation(byte(2)), isContinuation(byte(3)) else { return 0 }
            return 4
        default:
            return 0
        }
    }
}
