// Helpers for the storage tests (IO, segments, recovery, compaction, index):
// a scratch directory removed when it goes away, whole-file reads and writes
// with plain syscalls, and small segment builders on top of the Reference
// encoder in TestSupport.swift.

@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
/// when the object goes away.
final class ScratchDirectory {
    let path: String

    init() throws {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/logkit-store-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestIOError(description: "mkdtemp failed: errno \(errno)")
        }
        // The canonical form, so paths compare equal to what realpath returns.
        path = FileSystem.absolutePath(String(cString: made))
    }

    deinit { ScratchDirectory.removeTree(path) }

    /// `name` inside the directory.
    func file(_ name: String) -> String { path + "/" + name }

    /// Writes `bytes` to `name` (replacing it) and returns its path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let target = file(name)
        try writeFile(target, bytes)
        return target
    }

    /// Names in the directory, sorted, without "." and "..".
    func names() -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var result: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { result.append(name) }
        }
        return result.sorted()
    }

    private static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR, let dir = opendir(path) {
            var children: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                }
                if name != "." && name != ".." { children.append(path + "/" + name) }
            }
            closedir(dir)
            for child in children { removeTree(child) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

/// Replaces the file at `path` with `bytes`.
func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC)
    defer { fd.close() }
    try fd.writeAll(bytes)
}

/// Appends `bytes` to the file at `path`, as another writer (or a crash) would.
func appendFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = try FileDescriptor.open(path, O_WRONLY | O_APPEND)
    defer { fd.close() }
    try fd.writeAll(bytes)
}

/// The whole contents of the file at `path`.
func readFile(_ path: String) throws -> [UInt8] {
    let fd = try FileDescriptor.open(path, O_RDONLY)
    defer { fd.close() }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
        if n == 0 { return out }
        out += chunk[0..<n]
    }
}

func fileStatus(_ path: String) -> stat? {
    var info = stat()
    return lstat(path, &info) == 0 ? info : nil
}

func fileMode(_ path: String) -> mode_t? {
    fileStatus(path).map { $0.st_mode & 0o7777 }
}

func isSymlink(_ path: String) -> Bool {
    fileStatus(path).map { $0.st_mode & S_IFMT == S_IFLNK } ?? false
}

func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink(path, &buffer, Int(PATH_MAX))
    guard n >= 0 else { return nil }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A segment built record by record, remembering where each one starts.
struct SegmentImage {
    var bytes: [UInt8] = []
    var offsets: [UInt64] = []
    var records: [[UInt8]] = []

    @discardableResult
    mutating func add(_ record: [UInt8]) -> UInt64 {
        let offset = UInt64(bytes.count)
        offsets.append(offset)
        records.append(record)
        bytes += record
        return offset
    }

    @discardableResult
    mutating func put(_ key: String, _ value: String, _ timestamp: UInt64 = 1) -> UInt64 {
        add(Reference.put(key, value, timestamp))
    }

    @discardableResult
    mutating func delete(_ key: String, _ timestamp: UInt64 = 1) -> UInt64 {
        add(Reference.delete(key, timestamp))
    }

    var size: UInt64 { UInt64(bytes.count) }
}

/// A record with one byte flipped at `index` (relative to the record).
func flipped(_ record: [UInt8], at index: Int) -> [UInt8] {
    var copy = record
    copy[index] ^= 0x5A
    return copy
}

/// Collects the lines a `notice` or `warn` callback hears.
final class MessageLog {
    var messages: [String] = []
    func callAsFunction(_ message: String) { messages.append(message) }
}

/// Every record of a whole segment image, parsed without verifying, as
/// (offset, key, value, type): for checking what a tool wrote.
func listRecords(_ bytes: [UInt8]) -> [(offset: Int, key: String, value: String, type: RecordType)] {
    var out: [(Int, String, String, RecordType)] = []
    bytes.withUnsafeBytes { raw in
        var position = 0
        for record in RecordSequence(raw) {
            out.append((position, String(decoding: record.key, as: UTF8.self), String(decoding: record.value, as: UTF8.self), record.type))
            position += record.length
        }
        if position != raw.count { Issue.record("\(raw.count - position) bytes after the last whole record") }
    }
    return out
}
