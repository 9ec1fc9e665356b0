// A store (contract section 5): a directory of segments `segment-N.dat`, N a
// decimal number of at least four digits, ordered by N as a number. The
// highest is the active segment, the only one appended to; the lower ones
// are closed and never appended again.
//
// Beside the segments a store holds only what logkit itself puts there:
// `LOCK` (the writers' lock, which also carries the active segment's
// verified end), the index (`index.json` and its per-segment runs
// `index-N.json`, see docs/index.md) and temporaries of atomic writes
// (`.NAME.tmp-…`, which a crash can leave and which every tool ignores).
// Anything else is a foreign file and every tool refuses the store: a file
// nobody here understands may be a segment under a wrong name, or a sign
// that the directory is not the store it was taken for.

import LogIO

import Glibc

public struct StoreSegment: Equatable, Sendable {
    public let number: UInt64
    public let path: String
}

public struct Store: Sendable {
    public let directory: String

    /// The segment size at which `logenc -a DIR` starts a new segment.
    public static let defaultSegmentSize: UInt64 = 64 << 20
    public static let lockName = "LOCK"
    public static let indexName = "index.json"

    public init(_ directory: String) {
        var trimmed = directory
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.directory = trimmed
    }

    /// True if `path` names a store: a directory.
    public static func isStore(_ path: String) -> Bool {
        FileSystem.isDirectory(path)
    }

    public var lockPath: String { path(of: Store.lockName) }
    public var indexPath: String { path(of: Store.indexName) }

    public func path(of name: String) -> String {
        directory == "/" ? "/" + name : directory + "/" + name
    }

    public func segmentPath(_ number: UInt64) -> String {
        path(of: Store.segmentName(number))
    }

    public static func segmentName(_ number: UInt64) -> String {
        "segment-" + padded(number) + ".dat"
    }

    /// The name of the index run that covers segment `number`.
    public static func runName(_ number: UInt64) -> String {
        "index-" + padded(number) + ".json"
    }

    private static func padded(_ number: UInt64) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// N, if `name` is `segment-N.dat` with N of at least four digits.
    public static func segmentNumber(_ name: String) -> UInt64? {
        number(in: name, prefix: "segment-", suffix: ".dat")
    }

    static func runNumber(_ name: String) -> UInt64? {
        number(in: name, prefix: "index-", suffix: ".json")
    }

    // Byte comparisons: String's own are Unicode-aware, and every lookup
    // classifies every name in the store's directory.
    private static func number(in name: String, prefix: StaticString, suffix: StaticString) -> UInt64? {
        var name = name
        return name.withUTF8 { bytes -> UInt64? in
            let (p, s) = (prefix.utf8CodeUnitCount, suffix.utf8CodeUnitCount)
            guard bytes.count >= p + s + 4, let start = bytes.baseAddress,
                  memcmp(start, prefix.utf8Start, p) == 0, memcmp(start + bytes.count - s, suffix.utf8Start, s) == 0
            else { return nil }
            let digits = UnsafeBufferPointer(rebasing: bytes[p..<(bytes.count - s)])
            guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
            return UInt64(String(decoding: digits, as: UTF8.self))
        }
    }

    /// A leftover of `FileSystem.writeAtomically` or of a merge.
    static func isTemporary(_ name: String) -> Bool {
        name.utf8.first == UInt8(ascii: ".") && name.contains(".tmp-")
    }

    /// The segments, oldest first. A foreign file, or two names for one
    /// number (`segment-0007.dat` and `segment-00007.dat`), refuses the store.
    public func segments() throws -> [StoreSegment] {
        var found: [UInt64: String] = [:]
        for name in try FileSystem.names(in: directory) {
            if let number = Store.segmentNumber(name) {
                if let other = found[number] {
                    throw PathRefused(message: "\(directory): \(other) and \(name) both name segment \(number); rename or remove one")
                }
                found[number] = name
            } else if name != Store.lockName && name != Store.indexName && Store.runNumber(name) == nil && !Store.isTemporary(name) {
                throw PathRefused(message: "\(path(of: name)): not a file of the store (a store holds segment-N.dat, LOCK and its index); move it out of \(directory)")
            }
        }
        return found.keys.sorted().map { StoreSegment(number: $0, path: path(of: found[$0]!)) }
    }

    /// The store `path` is a segment of, if it is one: a `segment-N.dat` in a
    /// directory that holds a store's `LOCK`. Tools that change a single
    /// segment refuse such a path, since they would not take the store's lock.
    public static func containing(segment path: String) -> Store? {
        let resolved = FileSystem.followingLink(path)
        let name = FileSystem.name(of: resolved)
        guard segmentNumber(name) != nil else { return nil }
        let store = Store(FileSystem.directory(of: resolved))
        return FileSystem.exists(store.lockPath) ? store : nil
    }

    /// Refuses a segment of a store where a tool would change it without the
    /// store's lock.
    public static func refuseStoreSegment(_ path: String, use: String) throws {
        guard let store = containing(segment: path) else { return }
        throw PathRefused(message: "\(path): a segment of the store \(store.directory); \(use)")
    }

    /// Refuses a store where only a segment will do.
    public static func refuseStore(_ path: String, need: String) throws {
        guard isStore(path) else { return }
        throw PathRefused(message: "\(path): a store (a directory of segments), not a segment; \(need)")
    }
}

extension Store {
    /// Opens every segment, oldest first, as one consistent view. A merge
    /// (`logpack DIR`) renames new segments over closed ones and removes
    /// others while readers take no lock; each of its steps leaves a
    /// consistent store, but a reader that opened some segments before a
    /// step and some after could see a mix of two states. So once all are
    /// open, each name must still be the file opened (one stat each): if
    /// none changed, the view is the store as it was at that moment;
    /// otherwise the listing is taken again. A segment opened stays
    /// readable whatever later happens to its name.
    public func openSegments() throws -> [SegmentReader] {
        while true {
            var readers: [SegmentReader] = []
            var changed = false
            for segment in try segments() {
                do {
                    readers.append(try SegmentReader(path: segment.path))
                } catch let error as SystemError where error.errno == ENOENT {
                    changed = true
                    break
                }
            }
            if !changed {
                for reader in readers where try FileSystem.identity(of: reader.path) != reader.identity {
                    changed = true
                    break
                }
            }
            if !changed { return readers }
        }
    }
}
