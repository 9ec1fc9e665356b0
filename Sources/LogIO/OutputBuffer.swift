// Buffered output: callers reserve room for a whole record or line, write into
// it through a raw pointer, and commit. The buffer goes to its file descriptor
// in large writes; a record or line is never split across a failed write
// boundary by the buffer itself, and `flush` is the only place bytes leave.

public final class OutputBuffer {
    public let sink: FileDescriptor
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    public private(set) var count = 0

    public init(sink: FileDescriptor, capacity: Int = 1 << 20) {
        self.sink = sink
        self.capacity = capacity
        storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// Room for at least `n` more bytes, flushing first if they do not fit,
    /// and growing the buffer if one item is larger than it.
    @inline(__always)
    public func reserve(_ n: Int) throws(SystemError) -> UnsafeMutableRawPointer {
        if count &+ n > capacity { try makeRoom(n) }
        return storage + count
    }

    @inline(__always)
    public func commit(_ n: Int) {
        count &+= n
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        guard bytes.count > 0 else { return }
        let p = try reserve(bytes.count)
        p.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        commit(bytes.count)
    }

    public func append(_ bytes: [UInt8]) throws(SystemError) {
        let p = try reserve(bytes.count)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: $0.count) } }
        commit(bytes.count)
    }

    public func append(_ text: String) throws(SystemError) {
        var text = text
        let n = text.utf8.count
        let p = try reserve(n)
        text.withUTF8 { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        commit(n)
    }

    /// Writes everything buffered. On failure the buffer is unchanged.
    public func flush() throws(SystemError) {
        guard count > 0 else { return }
        try sink.writeAll(UnsafeRawBufferPointer(start: storage, count: count))
        count = 0
    }

    private func makeRoom(_ n: Int) throws(SystemError) {
        try flush()
        if n > capacity {
            storage.deallocate()
            capacity = n
            storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        }
    }
}
