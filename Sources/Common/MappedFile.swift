// A read-only memory map of a whole file, for tools that need random access
// over a segment (recovery resynchronising past damage, compaction's two
// passes) without copying it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public final class MappedFile {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

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

    /// Maps in every page from `offset` to the end in one call, for a reader
    /// about to touch them all: one pass through the kernel instead of a page
    /// fault per few pages. Advisory: on kernels without MADV_POPULATE_READ
    /// the pages fault in as they are read.
    public func prefault(from offset: Int) {
        guard let base = bytes.baseAddress, offset < bytes.count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), bytes.count - start, 22 /* MADV_POPULATE_READ */)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
