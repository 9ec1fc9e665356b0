// The model of JSON (and the refusal it throws) that the index-line and
// json-line targets share: each names this file in a `// Shared:` line, and
// Fuzz/run.sh compiles it into them.

// The library under test: Common, or the modules it is split into.
#if canImport(Common)
@testable import Common
#endif
#if canImport(LogFormat)
@testable import LogFormat
#endif
#if canImport(LogIO)
@testable import LogIO
#endif
#if canImport(LogJSON)
@testable import LogJSON
#endif
#if canImport(LogStore)
@testable import LogStore
#endif
#if canImport(Glibc)
import Glibc
#endif

// MARK: - The model of JSON

indirect enum JSON: Equatable {
    case object([Field])
    case array([JSON])
    case string([UInt8])
    case number([UInt8])
    case literal([UInt8])

    struct Field: Equatable {
        var name: [UInt8]
        var value: JSON
    }
}

/// RFC 8259 over bytes, independently of logkit's JSONCursor.
struct JSONModel {
    let a: [UInt8]
    var i = 0
    static let maxDepth = 512

    init(_ a: [UInt8]) { self.a = a }

    var atEnd: Bool { i >= a.count }
    func peek() -> UInt8? { i < a.count ? a[i] : nil }

    mutating func whitespace() {
        while let c = peek(), c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
    }

    /// A value at nesting `depth` (the top-level object is at 0); nil if the
    /// text is not JSON there.
    mutating func value(depth: Int) -> JSON? {
        guard depth <= JSONModel.maxDepth, let c = peek() else { return nil }
        switch c {
        case UInt8(ascii: "\""): return string().map { .string($0) }
        case UInt8(ascii: "{"): return object(depth: depth)
        case UInt8(ascii: "["): return array(depth: depth)
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
        default: return nil
        }
    }

    mutating func object(depth: Int) -> JSON? {
        i += 1
        whitespace()
        var fields: [JSON.Field] = []
        if peek() == UInt8(ascii: "}") { i += 1; return .object(fields) }
        while true {
            guard peek() == UInt8(ascii: "\""), let name = string() else { return nil }
            whitespace()
            guard peek() == UInt8(ascii: ":") else { return nil }
            i += 1
            whitespace()
            guard let v = value(depth: depth + 1) else { return nil }
            fields.append(JSON.Field(name: name, value: v))
            whitespace()
            if peek() == UInt8(ascii: ",") { i += 1; whitespace(); continue }
            guard peek() == UInt8(ascii: "}") else { return nil }
            i += 1
            return .object(fields)
        }
    }

    mutating func array(depth: Int) -> JSON? {
        i += 1
        whitespace()
        var items: [JSON] = []
        if peek() == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            guard let v = value(depth: depth + 1) else { return nil }
            items.append(v)
            whitespace()
            if peek() == UInt8(ascii: ",") { i += 1; whitespace(); continue }
            guard peek() == UInt8(ascii: "]") else { return nil }
            i += 1
            return .array(items)
        }
    }

    mutating func literal(_ word: String) -> JSON? {
        let w = Array(word.utf8)
        guard i + w.count <= a.count, Array(a[i..<(i + w.count)]) == w else { return nil }
        i += w.count
        return .literal(w)
    }

    static func isDigit(_ c: UInt8?) -> Bool { c.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }

    mutating func number() -> JSON? {
        let start = i
        if peek() == UInt8(ascii: "-") { i += 1 }
        guard JSONModel.isDigit(peek()) else { return nil }
        if peek() == UInt8(ascii: "0") { i += 1 } else { while JSONModel.isDigit(peek()) { i += 1 } }
        if peek() == UInt8(ascii: ".") {
            i += 1
            guard JSONModel.isDigit(peek()) else { return nil }
            while JSONModel.isDigit(peek()) { i += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            i += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { i += 1 }
            guard JSONModel.isDigit(peek()) else { return nil }
            while JSONModel.isDigit(peek()) { i += 1 }
        }
        return .number(Array(a[start..<i]))
    }

    mutating func hex4() -> UInt32? {
        guard i + 4 <= a.count, let v = UInt32(String(decoding: a[i..<(i + 4)], as: UTF8.self), radix: 16),
              a[i..<(i + 4)].allSatisfy({ JSONModel.isDigit($0) || (0x41...0x46).contains($0) || (0x61...0x66).contains($0) })
        else { return nil }
        i += 4
        return v
    }

    /// A string at its opening quote, decoded; nil if it is not valid.
    mutating func string() -> [UInt8]? {
        i += 1
        var out: [UInt8] = []
        var run: [UInt8] = []
        func flush() -> Bool {
            defer { run = [] }
            guard String(validating: run, as: UTF8.self) != nil else { return false }
            out += run
            return true
        }
        while let c = peek() {
            if c == UInt8(ascii: "\"") {
                i += 1
                return flush() ? out : nil
            }
            if c < 0x20 { return nil }
            if c != UInt8(ascii: "\\") {
                run.append(c)
                i += 1
                continue
            }
            guard flush() else { return nil }
            i += 1
            guard let e = peek() else { return nil }
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard var scalar = hex4() else { return nil }
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 2 <= a.count, a[i] == UInt8(ascii: "\\"), a[i + 1] == UInt8(ascii: "u") else { return nil }
                    i += 2
                    guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                    scalar = 0x10000 + (scalar - 0xD800) * 0x400 + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    return nil
                }
                out += Array(String(Character(Unicode.Scalar(scalar)!)).utf8)
            default:
                return nil
            }
        }
        return nil
    }

    /// A whole line: nil for blank, `.failure` for not one JSON object.
    static func line(_ a: [UInt8]) -> Result<[JSON.Field], Refused>? {
        var m = JSONModel(a)
        m.whitespace()
        if m.atEnd { return nil }
        guard m.peek() == UInt8(ascii: "{"), case .object(let fields)? = m.value(depth: 0) else { return .failure(Refused()) }
        m.whitespace()
        guard m.atEnd else { return .failure(Refused()) }
        return .success(fields)
    }
}

struct Refused: Error {}
