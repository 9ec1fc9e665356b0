// A read-only memory map of a whole file, for tools that need random access
// over a segment (recovery resynchronising past damage, compaction's two
// passes) without copying it.

import Glibc

public final class MappedFile {
    public let path: String
    /// Valid only while this object lives: use `withBytes`.
    private let bytes: UnsafeRawBufferPointer

    /// Maps the first `size` bytes of `file` (all of it by default).
    public init(_ file: FileDescriptor, size: UInt64? = nil) throws(SystemError) {
        path = file.path
        var length = 0
        if let size { length = Int(size) } else { length = Int(try file.size()) }
        guard length > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, length, PROT_READ, MAP_SHARED, file.raw, 0), address != MAP_FAILED else {
            throw SystemError(errno: errno, operation: "mmap", path: file.path)
        }
        _ = madvise(address, length, MADV_SEQUENTIAL)
        bytes = UnsafeRawBufferPointer(start: address, count: length)
    }

    /// Lends the mapped bytes to `body`, keeping the mapping alive until it
    /// returns. (Swift may end an object's life at its last use, so a pointer
    /// read out of a mapping must never outlive a call like this one.)
    public func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try withExtendedLifetime(self) { try body(bytes) }
    }

    /// Lets the kernel take back the mapped pages in `range` (from the page
    /// that holds its start, up to the last page it covers whole): a walk
    /// through a file bigger than memory should be would otherwise keep all
    /// of it resident, and counted in the process's memory. Touching them
    /// again reads them back from the page cache.
    public func release(_ range: Range<Int>) {
        let page = Int(getpagesize())
        let start = range.lowerBound / page * page
        let end = min(range.upperBound, bytes.count) / page * page
        guard end > start, let base = bytes.baseAddress else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base) + start, end - start, MADV_DONTNEED)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
