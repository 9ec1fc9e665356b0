// Standard base64 (RFC 4648, section 4: `+/` alphabet, `=` padding), the
// encoding of `value_b64`. Decoding is strict: whole four-character groups,
// padding only at the very end, nothing outside the alphabet, and zero bits
// where padding stands, so every value has exactly one encoding.

import LogFormat
import LogIO

public enum Base64 {
    private static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    public static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Encodes `bytes` into `out`, which has room for `encodedLength` bytes;
    /// returns the number of bytes written.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) -> Int {
        let table = alphabet.utf8Start
        let n = bytes.count
        guard let src = bytes.baseAddress else { return 0 }
        var i = 0
        var o = 0
        @inline(__always) func emit(_ sextet: UInt32) {
            out.storeBytes(of: table[Int(sextet & 63)], toByteOffset: o, as: UInt8.self)
            o &+= 1
        }
        while i + 3 <= n {
            let triple = UInt32(src.load(fromByteOffset: i, as: UInt8.self)) << 16
                | UInt32(src.load(fromByteOffset: i + 1, as: UInt8.self)) << 8
                | UInt32(src.load(fromByteOffset: i + 2, as: UInt8.self))
            emit(triple >> 18); emit(triple >> 12); emit(triple >> 6); emit(triple)
            i += 3
        }
        let rest = n - i
        if rest > 0 {
            var triple = UInt32(src.load(fromByteOffset: i, as: UInt8.self)) << 16
            if rest == 2 { triple |= UInt32(src.load(fromByteOffset: i + 1, as: UInt8.self)) << 8 }
            emit(triple >> 18); emit(triple >> 12)
            if rest == 2 { emit(triple >> 6) } else { out.storeBytes(of: UInt8(ascii: "="), toByteOffset: o, as: UInt8.self); o += 1 }
            out.storeBytes(of: UInt8(ascii: "="), toByteOffset: o, as: UInt8.self)
            o += 1
        }
        return o
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { src in
            String(unsafeUninitializedCapacity: encodedLength(src.count)) { out in
                encode(src, into: UnsafeMutableRawPointer(out.baseAddress!))
            }
        }
    }

    /// Decodes `text` into `out` (emptied first); false if it is not valid base64.
    public static func decode(_ text: UnsafeRawBufferPointer, into out: ByteBuffer) -> Bool {
        out.removeAll()
        let n = text.count
        guard n % 4 == 0 else { return false }
        guard n > 0, let src = text.baseAddress else { return true }
        out.reserve(n / 4 * 3)
        var i = 0
        while i < n {
            var group: UInt32 = 0
            var padding = 0
            for k in 0..<4 {
                let c = src.load(fromByteOffset: i + k, as: UInt8.self)
                let sextet = value(of: c)
                if sextet < 64 {
                    guard padding == 0 else { return false }
                    group = group << 6 | UInt32(sextet)
                } else if c == UInt8(ascii: "="), i + 4 == n, k >= 2 {
                    padding += 1
                    group <<= 6
                } else {
                    return false
                }
            }
            // The bits a padded group does not carry must be zero: one
            // encoding per value.
            if padding == 1 && group & 0xFF != 0 || padding == 2 && group & 0xFFFF != 0 { return false }
            out.append(UInt8(truncatingIfNeeded: group >> 16))
            if padding < 2 { out.append(UInt8(truncatingIfNeeded: group >> 8)) }
            if padding < 1 { out.append(UInt8(truncatingIfNeeded: group)) }
            i += 4
        }
        return true
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        let out = ByteBuffer()
        let ok = text.withUTF8 { decode(UnsafeRawBufferPointer($0), into: out) }
        return withExtendedLifetime(out) { ok ? Array(out.bytes) : nil }
    }

    /// The six-bit value of a base64 character, or 255.
    @inline(__always)
    private static func value(of c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return 255
        }
    }
}
