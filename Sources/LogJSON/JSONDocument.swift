// A whole, small JSON document as a tree: the header line of an index, a
// report. Hot paths never come here; they read bytes with JSONCursor.

import LogFormat
import LogIO

public indirect enum JSONValue: Equatable, Sendable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    /// A number as written, so integers keep every digit.
    case number(String)
    case bool(Bool)
    case null

    public subscript(key: String) -> JSONValue? {
        guard case .object(let fields) = self else { return nil }
        return fields.first { $0.0 == key }?.1
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var uint64: UInt64? {
        if case .number(let n) = self { return UInt64(n) }
        return nil
    }

    public var array: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.array(let x), .array(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// The value as compact JSON text: a request body, a report line.
    public var serialized: [UInt8] {
        switch self {
        case .object(let fields):
            var out: [UInt8] = [UInt8(ascii: "{")]
            for (k, (name, value)) in fields.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                out += JSONText.quoted(name)
                out.append(UInt8(ascii: ":"))
                out += value.serialized
            }
            return out + [UInt8(ascii: "}")]
        case .array(let items):
            var out: [UInt8] = [UInt8(ascii: "[")]
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                out += item.serialized
            }
            return out + [UInt8(ascii: "]")]
        case .string(let text): return JSONText.quoted(text)
        case .number(let text): return Array(text.utf8)
        case .bool(let value): return Array((value ? "true" : "false").utf8)
        case .null: return Array("null".utf8)
        }
    }

    /// Parses one JSON document, which must be all of `text` but whitespace.
    public static func parse(_ text: UnsafeRawBufferPointer) throws(JSONLineError) -> JSONValue {
        try JSONDocumentParser().parse(text)
    }

    public static func parse(_ text: String) throws(JSONLineError) -> JSONValue {
        let bytes = Array(text.utf8)
        let result: Result<JSONValue, JSONLineError> = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONLineError) in try parse(raw) }
        }
        return try result.get()
    }
}

final class JSONDocumentParser: JSONCursor {
    private let scratch = ByteBuffer()

    func parse(_ text: UnsafeRawBufferPointer) throws(JSONLineError) -> JSONValue {
        guard start(text) else { throw syntax("empty document") }
        skipWhitespace()
        let value = try value(depth: 1)
        skipWhitespace()
        guard i == end else { throw syntax("unexpected text after the document") }
        return value
    }

    private func value(depth: Int) throws(JSONLineError) -> JSONValue {
        guard depth <= Self.maxDepth else { throw syntax("nesting deeper than \(Self.maxDepth) levels") }
        guard let c = peek() else { throw syntax("expected a value") }
        switch c {
        case UInt8(ascii: "\""):
            return .string(String(decoding: try string(into: scratch), as: UTF8.self))
        case UInt8(ascii: "{"):
            var fields: [(String, JSONValue)] = []
            try forEachField { name throws(JSONLineError) in
                // The name first: reading the value may reuse its buffer.
                let name = String(decoding: name, as: UTF8.self)
                fields.append((name, try value(depth: depth + 1)))
            }
            return .object(fields)
        case UInt8(ascii: "["):
            var items: [JSONValue] = []
            try forEachElement { () throws(JSONLineError) in items.append(try value(depth: depth + 1)) }
            return .array(items)
        default:
            let startIndex = i
            try skipValue(depth: depth)
            let text = String(decoding: UnsafeRawBufferPointer(start: p + startIndex, count: i - startIndex), as: UTF8.self)
            switch text {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "null": return .null
            default: return .number(text)
            }
        }
    }
}
