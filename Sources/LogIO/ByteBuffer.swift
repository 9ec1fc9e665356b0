// A growable scratch buffer of raw bytes, reused across records so the hot
// loops allocate nothing once they have warmed up.

public final class ByteBuffer {
    public private(set) var base: UnsafeMutableRawPointer
    public private(set) var capacity: Int
    public var count = 0

    public init(capacity: Int = 4096) {
        self.capacity = max(capacity, 16)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    public func removeAll() { count = 0 }

    /// Makes room for `n` more bytes, keeping what is there.
    @inline(__always)
    public func reserve(_ n: Int) {
        if count &+ n > capacity { grow(to: count &+ n) }
    }

    @inline(__always)
    public func append(_ byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count &+= 1
    }

    @inline(__always)
    public func append(_ p: UnsafeRawPointer, _ n: Int) {
        guard n > 0 else { return }
        reserve(n)
        (base + count).copyMemory(from: p, byteCount: n)
        count &+= n
    }

    /// Replaces the contents with a copy of `bytes` minus the first `offset`.
    public func keep(from offset: Int) {
        let remaining = count - offset
        if remaining > 0 && offset > 0 { base.copyMemory(from: base + offset, byteCount: remaining) }
        count = max(remaining, 0)
    }

    private func grow(to needed: Int) {
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        if count > 0 { newBase.copyMemory(from: base, byteCount: count) }
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }
}
