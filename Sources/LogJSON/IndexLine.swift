// One entry line of the index: where the newest record of a key is. The
// index file itself (its header, its search, its writing) is the store's;
// reading the fields of a line is JSON work, done here with the one cursor.

import LogFormat
import LogIO

/// Where the newest record of a key is.
public struct IndexLocation: Equatable, Sendable {
    public var type: RecordType
    public var segment: Int
    public var offset: UInt64
    public var length: UInt64
    public var timestamp: UInt64

    public init(type: RecordType, segment: Int, offset: UInt64, length: UInt64, timestamp: UInt64) {
        self.type = type
        self.segment = segment
        self.offset = offset
        self.length = length
        self.timestamp = timestamp
    }
}

public enum IndexLine {
    /// Writes one entry line; every line but the last ends with a comma.
    public static func write<Out: LineBuffer>(key: UnsafeRawBufferPointer, location: IndexLocation, last: Bool, to out: Out) throws(SystemError) {
        let worstCase = 6 * key.count + 160
        let start = try out.room(for: worstCase)
        var p = start
        p.put("{\"key\":\"")
        JSONText.putStringBody(key, &p, lossy: true)
        p.put(location.type == .put ? "\",\"type\":\"put\",\"segment\":" : "\",\"type\":\"delete\",\"segment\":")
        p.putDecimal(UInt64(location.segment))
        p.put(",\"offset\":")
        p.putDecimal(location.offset)
        p.put(",\"length\":")
        p.putDecimal(location.length)
        p.put(",\"timestamp\":")
        p.putDecimal(location.timestamp)
        p.put(last ? "}\n" : "},\n")
        out.commit(from: start, to: p, reserved: worstCase)
    }
}

/// Reads the fields of one entry line.
public final class IndexLineParser: JSONCursor {
    private let keyScratch = ByteBuffer()

    public override init() {}

    /// The key of an entry line, which starts `{"key":"`.
    public func key(of line: UnsafeRawBufferPointer) throws(JSONLineError) -> UnsafeRawBufferPointer {
        let prefix: StaticString = "{\"key\":\""
        guard start(line), line.count > prefix.utf8CodeUnitCount,
              memcmpEqual(line.baseAddress!, prefix.utf8Start, prefix.utf8CodeUnitCount)
        else {
            throw JSONLineError(column: nil, reason: "not an index entry line")
        }
        i = prefix.utf8CodeUnitCount - 1
        return try string(into: keyScratch)
    }

    /// The location fields of an entry line, after its key.
    public func location(of line: UnsafeRawBufferPointer) throws(JSONLineError) -> IndexLocation {
        _ = try key(of: line)
        var type: RecordType?
        var numbers: [UInt64?] = [nil, nil, nil, nil]
        while true {
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { break }
            try expect(UInt8(ascii: ","), "expected ',' or '}' after a field")
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw syntax("expected '\"' to start a field name") }
            let name = try string(into: otherScratch)
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "expected ':' after a field name")
            skipWhitespace()
            if equals(name, "type") {
                guard peek() == UInt8(ascii: "\"") else { throw syntax("\"type\" must be a string") }
                let text = try string(into: otherScratch)
                type = equals(text, "put") ? .put : equals(text, "delete") ? .delete : nil
            } else if let slot = Self.numberFields.firstIndex(where: { equals(name, $0) }) {
                numbers[slot] = try unsigned()
            } else {
                try skipValue(depth: 1)
            }
        }
        guard let type, let segment = numbers[0], let offset = numbers[1], let length = numbers[2], let timestamp = numbers[3] else {
            throw JSONLineError(column: nil, reason: "entry lacks type, segment, offset, length or timestamp")
        }
        return IndexLocation(type: type, segment: Int(clamping: segment), offset: offset, length: length, timestamp: timestamp)
    }

    private static let numberFields: [StaticString] = ["segment", "offset", "length", "timestamp"]
}
