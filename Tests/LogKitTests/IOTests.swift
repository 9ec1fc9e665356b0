// LogIO: ByteBuffer, OutputBuffer, LineReader, MappedFile and FileSystem.

@testable import LogFormat
@testable import LogIO
@testable import LogJSON
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: ByteBuffer

@Suite("ByteBuffer")
struct ByteBufferTests {
    @Test("a capacity below 16 is raised to 16; a new buffer is empty")
    func minimumCapacity() {
        let buffer = ByteBuffer(capacity: 0)
        #expect(buffer.capacity == 16)
        #expect(buffer.count == 0)
        #expect(buffer.bytes.isEmpty)
        #expect(ByteBuffer(capacity: 100).capacity == 100)
    }

    @Test("appending past the capacity grows it by doubling and keeps every byte in order")
    func growKeepsBytes() {
        let buffer = ByteBuffer(capacity: 16)
        for b in 0..<100 { buffer.append(UInt8(b)) }
        #expect(buffer.count == 100)
        #expect(buffer.capacity == 128)
        #expect(Array(buffer.bytes) == (0..<100).map { UInt8($0) })
    }

    @Test("append(pointer, n) copies n bytes; n == 0 changes nothing")
    func appendPointer() {
        let buffer = ByteBuffer(capacity: 16)
        let data: [UInt8] = Array(utf8("hello, world, and more than sixteen bytes"))
        data.withUnsafeBytes { buffer.append($0.baseAddress!, $0.count) }
        data.withUnsafeBytes { buffer.append($0.baseAddress!, 0) }
        #expect(Array(buffer.bytes) == data)
    }

    @Test("reserve makes room without changing count or contents")
    func reserveKeeps() {
        let buffer = ByteBuffer(capacity: 16)
        for b in utf8("0123456789") { buffer.append(b) }
        buffer.reserve(1000)
        #expect(buffer.capacity >= 1010)
        #expect(buffer.count == 10)
        #expect(Array(buffer.bytes) == utf8("0123456789"))
        let before = buffer.capacity
        buffer.reserve(5)
        #expect(buffer.capacity == before, "no growth when there is room")
    }

    @Test("keep(from:) moves the rest to the front, overlapping or not", arguments: [0, 1, 30, 50, 70, 99, 100, 150])
    func keepFrom(offset: Int) {
        let buffer = ByteBuffer(capacity: 16)
        let data = (0..<100).map { UInt8($0) }
        data.withUnsafeBytes { buffer.append($0.baseAddress!, $0.count) }
        buffer.keep(from: offset)
        let expected = offset >= 100 ? [] : Array(data[offset...])
        #expect(buffer.count == expected.count)
        #expect(Array(buffer.bytes) == expected)
    }

    @Test("removeAll empties it and keeps the capacity")
    func removeAll() {
        let buffer = ByteBuffer(capacity: 16)
        for b in 0..<40 { buffer.append(UInt8(b)) }
        let capacity = buffer.capacity
        buffer.removeAll()
        #expect(buffer.count == 0)
        #expect(buffer.capacity == capacity)
        buffer.append(7)
        #expect(Array(buffer.bytes) == [7])
    }

    @Test("as a LineBuffer: room(for:) is at the end, commit counts only what it is told")
    func lineBuffer() {
        let buffer = ByteBuffer(capacity: 16)
        buffer.append(1)
        let p = buffer.room(for: 40)
        #expect(p == buffer.base + 1)
        for k in 0..<40 { p.storeBytes(of: UInt8(100 + k), toByteOffset: k, as: UInt8.self) }
        buffer.commit(3)
        #expect(Array(buffer.bytes) == [1, 100, 101, 102])
    }
}

// MARK: OutputBuffer

@Suite("OutputBuffer")
struct OutputBufferTests {
    /// A buffer writing to a fresh temporary file.
    private func makeBuffer(capacity: Int) throws -> (OutputBuffer, TempFile, FileDescriptor) {
        let file = try TempFile()
        let sink = try file.open(O_WRONLY | O_TRUNC)
        return (OutputBuffer(sink: sink, capacity: capacity), file, sink)
    }

    @Test("nothing reaches the file before flush; flush writes everything and empties the buffer")
    func flushIsTheOnlyWrite() throws {
        let (out, file, sink) = try makeBuffer(capacity: 64)
        defer { sink.close() }
        try out.append(utf8("abc"))
        try out.append("déf")
        #expect(out.count == 7)
        #expect(try file.contents().isEmpty)
        try out.flush()
        #expect(out.count == 0)
        #expect(try file.contents() == utf8("abcdéf"))
        try out.flush()  // nothing buffered: nothing written twice
        #expect(try file.contents() == utf8("abcdéf"))
    }

    @Test("an item that does not fit flushes what is buffered first, then waits in the buffer")
    func flushesWhenFull() throws {
        let (out, file, sink) = try makeBuffer(capacity: 16)
        defer { sink.close() }
        try out.append(utf8("0123456789"))
        #expect(try file.contents().isEmpty)
        try out.append(utf8("abcdefghij"))
        #expect(try file.contents() == utf8("0123456789"), "the first item was flushed to make room")
        #expect(out.count == 10)
        try out.flush()
        #expect(try file.contents() == utf8("0123456789abcdefghij"))
    }

    @Test("an item larger than the buffer grows it and is written whole")
    func largerThanCapacity() throws {
        let (out, file, sink) = try makeBuffer(capacity: 16)
        defer { sink.close() }
        try out.append(utf8("head"))
        let big = (0..<100).map { UInt8($0) }
        try out.append(big)
        #expect(try file.contents() == utf8("head"))
        #expect(out.count == 100)
        try out.flush()
        #expect(try file.contents() == utf8("head") + big)
    }

    @Test("reserve hands out room at the end of what is buffered; commit keeps only the bytes committed")
    func roomAndCommit() throws {
        let (out, file, sink) = try makeBuffer(capacity: 64)
        defer { sink.close() }
        let p = try out.reserve(5)
        for (k, b) in utf8("hello").enumerated() { p.storeBytes(of: b, toByteOffset: k, as: UInt8.self) }
        out.commit(5)
        let q = try out.room(for: 10)
        #expect(q == p + 5, "the next room starts where the committed bytes end")
        for (k, b) in utf8(", world!!!").enumerated() { q.storeBytes(of: b, toByteOffset: k, as: UInt8.self) }
        out.commit(7)
        #expect(out.count == 12)
        try out.flush()
        #expect(try file.contents() == utf8("hello, world"))
    }

    @Test("empty appends write nothing")
    func emptyAppends() throws {
        let (out, file, sink) = try makeBuffer(capacity: 16)
        defer { sink.close() }
        try out.append([UInt8]())
        try out.append("")
        [UInt8]().withUnsafeBytes { raw in try? out.append(raw) }
        #expect(out.count == 0)
        try out.append("x")
        try out.flush()
        #expect(try file.contents() == utf8("x"))
    }

    @Test("a failed flush throws a SystemError naming the sink and keeps the buffered bytes")
    func failedFlush() throws {
        let file = try TempFile()
        let readOnly = try file.open(O_RDONLY)
        defer { readOnly.close() }
        let out = OutputBuffer(sink: readOnly, capacity: 64)
        try out.append(utf8("kept"))
        do {
            try out.flush()
            Issue.record("flush to a read-only descriptor succeeded")
        } catch {
            #expect(error.errno == EBADF)
            #expect(error.operation == "write")
            #expect(error.path == file.path)
        }
        #expect(out.count == 4)
    }
}

// MARK: LineReader

@Suite("LineReader")
struct LineReaderTests {
    /// Every line (as text) and its number, read with `chunk`-byte reads.
    private func lines(_ text: [UInt8], maxLine: Int = 1000, chunk: Int) throws -> [(String, Int)] {
        let file = try TempFile(text)
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        var out: [(String, Int)] = []
        try LineReader(source: fd, maxLine: maxLine, chunk: chunk).forEachLine { line, number in
            out.append((String(decoding: line, as: UTF8.self), number))
        }
        return out
    }

    @Test("lines that cross read boundaries come out whole and numbered", arguments: [1, 2, 3, 7, 16, 64, 1 << 20])
    func acrossChunks(chunk: Int) throws {
        let expected = ["first line", "", "a", "a considerably longer line that spans several small reads", "", "",
                        "tab\there", "ünïcödé ✓", "last"]
        let text = utf8(expected.joined(separator: "\n") + "\n")
        let got = try lines(text, chunk: chunk)
        #expect(got.map(\.0) == expected)
        #expect(got.map(\.1) == Array(1...expected.count))
    }

    @Test("a last line without a newline is still a line", arguments: [1, 4, 1 << 20])
    func lastLineWithoutNewline(chunk: Int) throws {
        #expect(try lines(utf8("one\ntwo\nthree"), chunk: chunk).map(\.0) == ["one", "two", "three"])
        #expect(try lines(utf8("one\n"), chunk: chunk).map(\.0) == ["one"], "a final newline adds no empty line")
        #expect(try lines(utf8("\n"), chunk: chunk).map(\.0) == [""])
        #expect(try lines([], chunk: chunk).isEmpty)
        #expect(try lines(utf8("x"), chunk: chunk).map { "\($0.0)#\($0.1)" } == ["x#1"])
    }

    @Test("a line of exactly maxLine bytes is read; one byte more is LineTooLong with its number", arguments: [1, 3, 5, 6, 1 << 20])
    func lineTooLong(chunk: Int) throws {
        #expect(try lines(utf8("12345\nabcde\n"), maxLine: 5, chunk: chunk).map(\.0) == ["12345", "abcde"])
        var seen: [String] = []
        let file = try TempFile(utf8("12345\n123456\nnever\n"))
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        do {
            try LineReader(source: fd, maxLine: 5, chunk: chunk).forEachLine { line, _ in
                seen.append(String(decoding: line, as: UTF8.self))
            }
            Issue.record("a 6-byte line passed a 5-byte limit")
        } catch let error as LineTooLong {
            #expect(error.line == 2)
            #expect(error.limit == 5)
        }
        #expect(seen == ["12345"], "lines before the long one were delivered, none after it")
    }

    @Test("an over-long last line without a newline is LineTooLong too", arguments: [2, 1 << 20])
    func lastLineTooLong(chunk: Int) throws {
        let file = try TempFile(utf8("ok\n1234567"))
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        #expect(throws: LineTooLong.self) {
            try LineReader(source: fd, maxLine: 5, chunk: chunk).forEachLine { _, _ in }
        }
        let file2 = try TempFile(utf8("ok\n1234567"))
        let fd2 = try file2.open(O_RDONLY)
        defer { fd2.close() }
        do {
            try LineReader(source: fd2, maxLine: 5, chunk: chunk).forEachLine { _, _ in }
            Issue.record("a 7-byte last line passed a 5-byte limit")
        } catch let error as LineTooLong {
            #expect(error.line == 2)
            #expect(error.message == "line 2: longer than the limit of 5 bytes (--max-record)")
        }
    }

    @Test("an error thrown by the body stops the reading and propagates")
    func bodyThrows() throws {
        struct Stop: Error {}
        let file = try TempFile(utf8("a\nb\nc\n"))
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        var seen: [Int] = []
        #expect(throws: Stop.self) {
            try LineReader(source: fd, maxLine: 10, chunk: 1).forEachLine { _, number in
                seen.append(number)
                if number == 2 { throw Stop() }
            }
        }
        #expect(seen == [1, 2])
    }

    @Test("lines through a pipe fed in small pieces")
    func throughPipe() throws {
        let expected = (0..<300).map { "line \($0) " + String(repeating: "x", count: $0 % 37) }
        let text = utf8(expected.joined(separator: "\n"))
        var got: [String] = []
        try withPipe(feeding: text, piece: 13) { fd in
            try LineReader(source: fd, maxLine: 100, chunk: 64).forEachLine { line, _ in
                got.append(String(decoding: line, as: UTF8.self))
            }
        }
        #expect(got == expected)
    }
}

// MARK: MappedFile

@Suite("MappedFile")
struct MappedFileTests {
    @Test("maps the whole file by default")
    func wholeFile() throws {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let file = try TempFile(data)
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        let map = try MappedFile(fd)
        #expect(map.path == file.path)
        map.withBytes { bytes in
            #expect(bytes.count == data.count)
            #expect(Array(bytes) == data)
        }
    }

    @Test("maps only the first `size` bytes when asked")
    func prefix() throws {
        let data = Array(utf8("0123456789abcdef"))
        let file = try TempFile(data)
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        try MappedFile(fd, size: 10).withBytes { #expect(Array($0) == Array(data[0..<10])) }
        try MappedFile(fd, size: 0).withBytes { #expect($0.count == 0) }
    }

    @Test("an empty file maps to an empty buffer")
    func emptyFile() throws {
        let file = try TempFile()
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        try MappedFile(fd).withBytes { bytes in
            #expect(bytes.count == 0)
            #expect(bytes.baseAddress == nil)
        }
    }

    @Test("withBytes returns the body's value")
    func returnsValue() throws {
        let file = try TempFile(utf8("abc"))
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        let sum = try MappedFile(fd).withBytes { $0.reduce(0) { $0 + Int($1) } }
        #expect(sum == 97 + 98 + 99)
    }

    @Test("a descriptor that cannot be mapped for reading is a SystemError from mmap")
    func writeOnly() throws {
        let file = try TempFile(utf8("abc"))
        let fd = try file.open(O_WRONLY)
        defer { fd.close() }
        do {
            _ = try MappedFile(fd)
            Issue.record("mapped a write-only descriptor")
        } catch {
            #expect(error.operation == "mmap")
            #expect(error.errno == EACCES)
            #expect(error.path == file.path)
        }
    }
}

// MARK: FileSystem

@Suite("FileSystem")
struct FileSystemTests {
    @Test("directory(of:)", arguments: [
        ("a/b/c", "a/b"), ("name", "."), ("/name", "/"), ("/a/b", "/a"), ("./x", "."), ("../x/y", "../x"), ("/", "/"),
    ])
    func directoryOf(path: String, expected: String) {
        #expect(FileSystem.directory(of: path) == expected)
    }

    @Test("relativePath(to:from:)", arguments: [
        ("/a/b/c", "/a", "b/c"),
        ("/a/x", "/a/b", "../x"),
        ("/x", "/a/b", "../../x"),
        ("/a/b", "/a/b", "."),
        ("/a", "/a/b/c", "../.."),
        ("/a/b/seg.dat", "/a/b", "seg.dat"),
        ("/data/seg", "/", "data/seg"),
        ("/ab/c", "/a", "../ab/c"),
    ])
    func relativePath(path: String, directory: String, expected: String) {
        #expect(FileSystem.relativePath(to: path, from: directory) == expected)
    }

    @Test("writeAtomically creates a missing file with the body's bytes")
    func createsFile() throws {
        let dir = try ScratchDirectory()
        let path = dir.file("new.json")
        try FileSystem.writeAtomically(path) { try $0.writeAll("created\n") }
        #expect(try readFile(path) == utf8("created\n"))
        #expect(dir.names() == ["new.json"], "no temporary file left behind")
    }

    @Test("writeAtomically replaces a regular file with a new one and keeps its mode")
    func replacesKeepingMode() throws {
        let dir = try ScratchDirectory()
        let path = try dir.write("index.json", utf8("old contents that are longer\n"))
        #expect(chmod(path, 0o640) == 0)
        let before = try #require(fileStatus(path))
        try FileSystem.writeAtomically(path) { try $0.writeAll("new\n") }
        #expect(try readFile(path) == utf8("new\n"))
        #expect(fileMode(path) == 0o640)
        let after = try #require(fileStatus(path))
        #expect(after.st_ino != before.st_ino, "a new file was renamed into place, not the old one rewritten")
        #expect(after.st_mode & S_IFMT == S_IFREG)
        #expect(dir.names() == ["index.json"])
    }

    @Test("a body that throws leaves the old file as it was and no temporary file")
    func bodyThrows() throws {
        struct Boom: Error {}
        let dir = try ScratchDirectory()
        let path = try dir.write("index.json", utf8("old\n"))
        #expect(throws: Boom.self) {
            try FileSystem.writeAtomically(path) { file in
                try file.writeAll("partial")
                throw Boom()
            }
        }
        #expect(try readFile(path) == utf8("old\n"))
        #expect(dir.names() == ["index.json"])
    }

    @Test("writeAtomically through a symlink replaces the target and leaves the link a link")
    func throughSymlink() throws {
        let dir = try ScratchDirectory()
        let target = try dir.write("real.json", utf8("old\n"))
        #expect(chmod(target, 0o600) == 0)
        let link = dir.file("link.json")
        #expect(symlink("real.json", link) == 0)
        try FileSystem.writeAtomically(link) { try $0.writeAll("through the link\n") }
        #expect(isSymlink(link))
        #expect(readLink(link) == "real.json")
        #expect(try readFile(target) == utf8("through the link\n"))
        #expect(fileMode(target) == 0o600)
        #expect(dir.names() == ["link.json", "real.json"])
    }

    @Test("writeAtomically refuses a dangling symlink and creates nothing")
    func danglingSymlink() throws {
        let dir = try ScratchDirectory()
        let link = dir.file("link.json")
        #expect(symlink("missing.json", link) == 0)
        do {
            try FileSystem.writeAtomically(link) { try $0.writeAll("never\n") }
            Issue.record("wrote through a dangling link")
        } catch let refused as PathRefused {
            #expect(refused.message.contains("link.json"))
            #expect(refused.message.contains("cannot be resolved"))
        }
        #expect(isSymlink(link))
        #expect(!FileSystem.exists(dir.file("missing.json")))
        #expect(dir.names() == ["link.json"])
    }

    @Test("writeAtomically refuses a directory")
    func refusesDirectory() throws {
        let dir = try ScratchDirectory()
        #expect(mkdir(dir.file("sub"), 0o755) == 0)
        #expect(throws: PathRefused.self) {
            try FileSystem.writeAtomically(dir.file("sub")) { try $0.writeAll("x") }
        }
    }

    @Test("makeDirectories creates every missing parent, and refuses a file in the way")
    func makeDirectories() throws {
        let dir = try ScratchDirectory()
        try FileSystem.makeDirectories(dir.file("a/b/c"))
        #expect(fileStatus(dir.file("a/b/c")).map { $0.st_mode & S_IFMT == S_IFDIR } == true)
        try FileSystem.makeDirectories(dir.file("a/b/c"))  // already there: fine
        try dir.write("file", [1])
        do {
            try FileSystem.makeDirectories(dir.file("file/sub"))
            Issue.record("made a directory under a regular file")
        } catch {
            #expect(error.errno == ENOTDIR)
        }
    }

    @Test("identity(of:) tells files apart, follows links, and is nil for a missing path")
    func identity() throws {
        let dir = try ScratchDirectory()
        let a = try dir.write("a", [1])
        let b = try dir.write("b", [1])
        #expect(symlink("a", dir.file("l")) == 0)
        let ia = try #require(try FileSystem.identity(of: a))
        #expect(try FileSystem.identity(of: b) != ia)
        #expect(try FileSystem.identity(of: dir.file("l")) == ia)
        #expect(try FileSystem.identity(of: dir.file("missing")) == nil)
        let fd = try FileDescriptor.open(a, O_RDONLY)
        defer { fd.close() }
        #expect(try fd.identity() == ia)
    }
}
