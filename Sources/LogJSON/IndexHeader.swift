// The header line of an index (contract section 4) and the store index's
// manifest (docs/index.md, "The store's index") share their fields: the
// segments covered, each with its size and last record. Every lookup reads
// one or two of them, so they are read field by field with the one cursor;
// as document trees they cost a lookup a quarter of a millisecond.

import LogFormat
import LogIO

/// The fields of one segment's entry, as written; the store checks them.
/// Only a manifest's entries name a device, inode, run, count and keys.
public struct IndexSegmentFields: Sendable {
    public var path: String?
    public var size: UInt64?
    public var lastOffset: UInt64?
    public var lastChecksum: String?
    public var device: UInt64?
    public var inode: UInt64?
    public var index: String?
    public var count: UInt64?
    public var firstKey: [UInt8]?
    public var lastKey: [UInt8]?
}

/// A header's or a manifest's own fields and its segments' entries.
public struct IndexHeaderFields: Sendable {
    public var version: UInt64?
    /// True for a store's header.
    public var isStore = false
    public var created: UInt64?
    public var count: UInt64?
    public var segments: [IndexSegmentFields] = []
}

public final class IndexHeaderParser: JSONCursor {
    private let scratch = ByteBuffer()

    public override init() {}

    /// Reads a header or manifest, which must be one JSON object and nothing
    /// else but whitespace. Fields it does not know are checked and skipped.
    public func parse(_ text: UnsafeRawBufferPointer) throws(JSONLineError) -> IndexHeaderFields {
        guard start(text) else { throw syntax("empty document") }
        var header = IndexHeaderFields()
        skipWhitespace()
        try forEachField { name throws(JSONLineError) in
            if equals(name, "version") {
                header.version = try number()
            } else if equals(name, "created") {
                header.created = try number()
            } else if equals(name, "count") {
                header.count = try number()
            } else if equals(name, "store") {
                header.isStore = peek() == UInt8(ascii: "t")
                try skipValue(depth: 2)
            } else if equals(name, "segments") {
                guard peek() == UInt8(ascii: "[") else { return try skipValue(depth: 2) }
                i += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "]") { i += 1; return }
                while true {
                    header.segments.append(try segment())
                    skipWhitespace()
                    if peek() == UInt8(ascii: ",") { i += 1; skipWhitespace(); continue }
                    try expect(UInt8(ascii: "]"), "expected ',' or ']' in an array")
                    return
                }
            } else {
                try skipValue(depth: 2)
            }
        }
        skipWhitespace()
        guard i == end else { throw syntax("unexpected text after the document") }
        return header
    }

    private func segment() throws(JSONLineError) -> IndexSegmentFields {
        var fields = IndexSegmentFields()
        try forEachField { name throws(JSONLineError) in
            if equals(name, "path") {
                fields.path = try text()
            } else if equals(name, "size") {
                fields.size = try number()
            } else if equals(name, "last_offset") {
                fields.lastOffset = try number()
            } else if equals(name, "last_checksum") {
                fields.lastChecksum = try text()
            } else if equals(name, "device") {
                fields.device = try number()
            } else if equals(name, "inode") {
                fields.inode = try number()
            } else if equals(name, "index") {
                fields.index = try text()
            } else if equals(name, "count") {
                fields.count = try number()
            } else if equals(name, "first_key") {
                fields.firstKey = try bytes()
            } else if equals(name, "last_key") {
                fields.lastKey = try bytes()
            } else {
                try skipValue(depth: 3)
            }
        }
        return fields
    }

    /// Calls `body` with each field's name, the cursor at its value, which
    /// `body` must read whole.
    private func forEachField(_ body: (UnsafeRawBufferPointer) throws(JSONLineError) -> Void) throws(JSONLineError) {
        try expect(UInt8(ascii: "{"), "expected an object")
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw syntax("expected '\"' to start a field name") }
            let name = try string(into: otherScratch)
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "expected ':' after a field name")
            skipWhitespace()
            try body(name)
            skipWhitespace()
            if peek() == UInt8(ascii: ",") { i += 1; skipWhitespace(); continue }
            try expect(UInt8(ascii: "}"), "expected ',' or '}' after a field")
            return
        }
    }

    // A field of another type than its own reads as missing (checked and
    // skipped), which the callers report by name.

    private func number() throws(JSONLineError) -> UInt64? {
        let start = i
        if case .value(let value) = try integer() { return value }
        i = start
        try skipValue(depth: 3)
        return nil
    }

    private func bytes() throws(JSONLineError) -> [UInt8]? {
        guard peek() == UInt8(ascii: "\"") else {
            try skipValue(depth: 3)
            return nil
        }
        return Array(try string(into: scratch))
    }

    private func text() throws(JSONLineError) -> String? {
        guard peek() == UInt8(ascii: "\"") else {
            try skipValue(depth: 3)
            return nil
        }
        return String(decoding: try string(into: scratch), as: UTF8.self)
    }
}
