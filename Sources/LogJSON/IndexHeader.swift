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
        guard peek() == UInt8(ascii: "{") else { throw syntax("expected an object") }
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
            } else if equals(name, "segments") && peek() == UInt8(ascii: "[") {
                try forEachElement { () throws(JSONLineError) in header.segments.append(try segment()) }
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
        guard peek() == UInt8(ascii: "{") else { throw syntax("expected an object") }
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

    // A field of another type than its own reads as missing (checked and
    // skipped), which the callers report by name.

    private func number() throws(JSONLineError) -> UInt64? {
        try optionalUnsigned(depth: 3)
    }

    private func optionalString() throws(JSONLineError) -> UnsafeRawBufferPointer? {
        guard peek() == UInt8(ascii: "\"") else {
            try skipValue(depth: 3)
            return nil
        }
        return try string(into: scratch)
    }

    private func bytes() throws(JSONLineError) -> [UInt8]? {
        try optionalString().map { Array($0) }
    }

    private func text() throws(JSONLineError) -> String? {
        try optionalString().map { String(decoding: $0, as: UTF8.self) }
    }
}
