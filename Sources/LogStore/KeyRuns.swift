// Finding each key's newest record among a store's closed segments in
// memory that does not grow with the store (step 3 of StoreMerge.swift).
//
// The records are taken in slices, in store order, of at most
// `MergeLimits.sliceRecords` records and `sliceBytes` bytes of segment. A
// slice is sorted by key hash (a stable radix sort, as in Compaction.swift,
// keys compared in place in the mapped segments only within a run of equal
// hashes) and reduced to one entry per key: the key's newest record in the
// slice, whether that is a PUT, and whether an older record of the key in
// the slice is one. Its entries, in (hash, key) order, are a *run*, written
// to a spill file. Merging the runs k-way reduces a key's entries the same
// way, the entry of a later slice being the newer, and gives each key's
// newest record among all the segments. Merging is the same reduction as
// sorting a slice, so more runs than `fanIn` are merged in rounds into
// longer runs first. Memory: a slice's sort arrays and mapped bytes (given
// back as soon as the slice is written), then a read buffer per run.
//
// A store that fits in one slice is reduced in memory, with no spill file.
// The spill file lives in the store under a hidden temporary name, which
// every tool ignores and the next merge removes, and it is unlinked as soon
// as it is open: a merge killed later leaves nothing behind.

import LogFormat
import LogIO

import Glibc

/// The memory a merge works in. Tests shrink it to reach every path with a
/// handful of records.
public struct MergeLimits: Sendable {
    /// Records sorted at once, 16 bytes each while sorted. A store of two
    /// million records is merged in one slice, without a spill file.
    public var sliceRecords = 1 << 21
    /// The bytes a slice keeps of its records: 25 and the key each.
    public var sliceBytes = 96 << 20
    /// Runs merged at once.
    public var fanIn = 64
    /// The read buffer of each run being merged.
    public var runBuffer = 512 << 10

    public init() {}
}

/// A key's newest record among the records reduced so far. `key` is valid
/// only during the call it is handed to.
struct KeyNewest {
    var hash: UInt32
    var key: UnsafeRawBufferPointer
    /// The record's number in store order, counted from the first closed segment.
    var record: UInt64
    var segment: UInt32
    var length: UInt32
    var isPut: Bool
    /// An older record of the key is a PUT: a DELETE that is newest hides it.
    var hidesPut: Bool
}

/// A run entry: hash, key length, record, segment, length (little-endian
/// words), a flags byte, then the key. A slice keeps its records in this
/// form too, in store order, so that sorting and reducing it reads a few
/// dozen bytes a record, not the segments.
private enum Entry {
    static let size = 25
    static let put: UInt8 = 1
    static let hidesPut: UInt8 = 2
    /// In a slice: a newer record of the key is in the slice.
    static let dead: UInt8 = 4

    @inline(__always)
    static func keyLength(_ p: UnsafeRawPointer) -> Int {
        Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
    }

    @inline(__always)
    static func key(_ p: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: p + size, count: keyLength(p))
    }

    @inline(__always)
    static func read(_ p: UnsafeRawPointer) -> KeyNewest {
        let flags = p.load(fromByteOffset: 24, as: UInt8.self)
        return KeyNewest(
            hash: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt32.self)), key: key(p),
            record: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
            segment: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt32.self)),
            length: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 20, as: UInt32.self)),
            isPut: flags & put != 0, hidesPut: flags & hidesPut != 0)
    }

    @inline(__always)
    static func write(_ newest: KeyNewest, at p: UnsafeMutableRawPointer) {
        p.storeBytes(of: newest.hash.littleEndian, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: UInt32(newest.key.count).littleEndian, toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: newest.record.littleEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: newest.segment.littleEndian, toByteOffset: 16, as: UInt32.self)
        p.storeBytes(of: newest.length.littleEndian, toByteOffset: 20, as: UInt32.self)
        p.storeBytes(of: (newest.isPut ? put : 0) | (newest.hidesPut ? hidesPut : 0), toByteOffset: 24, as: UInt8.self)
        if newest.key.count > 0 { (p + size).copyMemory(from: newest.key.baseAddress!, byteCount: newest.key.count) }
    }
}

/// The records of one slice, sorted and reduced to each key's newest.
final class KeySlice {
    private let limits: MergeLimits
    private let entries: ByteBuffer
    /// `hash << 32 | offset of the entry`, one per record.
    private var keyed: [UInt64] = []
    private var scratch: [UInt64] = []
    /// The entries of a run of equal hashes, sorted by key.
    private var group: [Int] = []

    init(_ limits: MergeLimits) {
        self.limits = limits
        // Reserved, not touched: a small store uses a small part of it.
        entries = ByteBuffer(capacity: limits.sliceBytes)
        keyed.reserveCapacity(limits.sliceRecords)
    }

    var isEmpty: Bool { keyed.isEmpty }

    func isFull(adding record: RecordView) -> Bool {
        // Entries are found by a 32-bit offset.
        !keyed.isEmpty && (keyed.count >= limits.sliceRecords
            || entries.count + Entry.size + record.key.count > min(limits.sliceBytes, Int(UInt32.max)))
    }

    @inline(__always)
    func add(_ record: RecordView, number: UInt64, segment: Int) {
        let hash = KeyHash.hash(record.key)
        keyed.append(UInt64(hash) << 32 | UInt64(entries.count))
        entries.reserve(Entry.size + record.key.count)
        Entry.write(KeyNewest(hash: hash, key: record.key, record: number, segment: UInt32(segment), length: UInt32(record.length),
                              isPut: record.type == .put, hidesPut: false), at: entries.base + entries.count)
        entries.count += Entry.size + record.key.count
    }

    /// Writes the slice as a run: each key's newest record in (hash, key)
    /// order. Empties the slice.
    func write(to out: OutputBuffer) throws(SystemError) {
        sort()
        let base = UnsafeRawPointer(entries.base)
        for item in keyed {
            let p = base + Int(item & 0xFFFF_FFFF)
            guard p.load(fromByteOffset: 24, as: UInt8.self) & Entry.dead == 0 else { continue }
            try out.append(UnsafeRawBufferPointer(start: p, count: Entry.size + Entry.keyLength(p)))
        }
        empty()
    }

    /// Hands `body` each key's newest record in the slice, in store order.
    /// Empties the slice.
    func forEachNewest(_ body: (KeyNewest) throws -> Void) rethrows {
        sort()
        var p = UnsafeRawPointer(entries.base)
        let end = p + entries.count
        while p < end {
            if p.load(fromByteOffset: 24, as: UInt8.self) & Entry.dead == 0 { try body(Entry.read(p)) }
            p += Entry.size + Entry.keyLength(p)
        }
        empty()
    }

    private func empty() {
        keyed.removeAll(keepingCapacity: true)
        entries.removeAll()
    }

    /// Sorts by hash, then marks in each key's entries all but the newest
    /// dead, and the newest as hiding a PUT if an older one is a PUT.
    private func sort() {
        KeyHash.radixSortByHash(&keyed, scratch: &scratch)
        let base = entries.base
        func entry(_ offset: Int) -> UnsafeMutableRawPointer { base + offset }
        func offset(_ item: UInt64) -> Int { Int(item & 0xFFFF_FFFF) }
        keyed.withUnsafeMutableBufferPointer { keyed in
            var start = 0
            while start < keyed.count {
                var end = start + 1
                while end < keyed.count && keyed[end] >> 32 == keyed[start] >> 32 { end += 1 }
                guard end > start + 1 else {
                    start = end
                    continue
                }
                // Mostly one key written again: the entries are in order as they are.
                let first = Entry.key(entry(offset(keyed[start])))
                var oneKey = true
                for item in keyed[(start + 1)..<end] where compareBytes(Entry.key(entry(offset(item))), first) != 0 {
                    oneKey = false
                    break
                }
                if !oneKey {
                    // Keys that share a hash: by key, then oldest first, as a run is.
                    group.removeAll(keepingCapacity: true)
                    for item in keyed[start..<end] { group.append(offset(item)) }
                    group.sort { a, b in
                        let order = compareBytes(Entry.key(entry(a)), Entry.key(entry(b)))
                        return order != 0 ? order < 0 : a < b
                    }
                    for (k, offset) in group.enumerated() { keyed[start + k] = (keyed[start] >> 32) << 32 | UInt64(offset) }
                }
                var hidesPut = false
                for k in start..<end {
                    let p = entry(offset(keyed[k]))
                    let flags = p.load(fromByteOffset: 24, as: UInt8.self)
                    if k + 1 < end && (oneKey || compareBytes(Entry.key(p), Entry.key(entry(offset(keyed[k + 1])))) == 0) {
                        hidesPut = hidesPut || flags & Entry.put != 0
                        p.storeBytes(of: flags | Entry.dead, toByteOffset: 24, as: UInt8.self)
                    } else {
                        if hidesPut { p.storeBytes(of: flags | Entry.hidesPut, toByteOffset: 24, as: UInt8.self) }
                        hidesPut = false
                    }
                }
                start = end
            }
        }
    }
}

/// The spill file: runs written one after another, and read back k-way.
final class KeyRuns {
    private let file: FileDescriptor
    private let out: OutputBuffer
    private(set) var runs: [Range<UInt64>] = []
    private let limits: MergeLimits

    /// Creates the spill file at `path` and unlinks it at once.
    init(path: String, limits: MergeLimits) throws {
        file = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
        do {
            try FileSystem.remove(path)
        } catch {
            file.close()
            throw error
        }
        out = OutputBuffer(sink: file, capacity: 1 << 20)
        self.limits = limits
    }

    deinit { file.close() }

    /// Writes `slice` as a run.
    func write(_ slice: KeySlice) throws {
        try run { try slice.write(to: out) }
    }

    private func run(_ body: () throws -> Void) throws {
        let start = try file.size()
        try body()
        try out.flush()
        runs.append(start..<(try file.size()))
    }

    /// Merges every run, handing `emit` each key's newest record among them
    /// all in (hash, key) order; rounds of `fanIn` runs first if need be.
    func merge(_ emit: (KeyNewest) throws -> Void) throws {
        while runs.count > limits.fanIn {
            let round = runs
            runs = []
            for group in stride(from: 0, to: round.count, by: limits.fanIn) {
                let some = Array(round[group..<min(group + limits.fanIn, round.count)])
                try run {
                    try merge(some) { newest in
                        let p = try out.reserve(Entry.size + newest.key.count)
                        Entry.write(newest, at: p)
                        out.commit(Entry.size + newest.key.count)
                    }
                }
            }
        }
        try merge(runs, emit)
    }

    private func merge(_ ranges: [Range<UInt64>], _ emit: (KeyNewest) throws -> Void) throws {
        let readers = try ranges.map { try RunReader(file, $0, buffer: limits.runBuffer) }
        // Each reader's entry at hand, copied out: comparing them touches no
        // object (a reader's is valid while the reader is in the heap).
        let none = KeyNewest(hash: 0, key: UnsafeRawBufferPointer(start: nil, count: 0), record: 0, segment: 0, length: 0, isPut: false, hidesPut: false)
        var heads = readers.map { $0.current ?? none }
        // A binary heap of the readers not yet done, smallest (hash, key)
        // first, the older run first among equal keys.
        var heap = readers.indices.filter { readers[$0].current != nil }
        func less(_ a: Int, _ b: Int) -> Bool {
            if heads[a].hash != heads[b].hash { return heads[a].hash < heads[b].hash }
            let order = compareBytes(heads[a].key, heads[b].key)
            return order != 0 ? order < 0 : a < b
        }
        func down(_ from: Int) {
            var parent = from
            while true {
                var smallest = parent
                let left = 2 * parent + 1
                if left < heap.count && less(heap[left], heap[smallest]) { smallest = left }
                if left + 1 < heap.count && less(heap[left + 1], heap[smallest]) { smallest = left + 1 }
                if smallest == parent { return }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        func pop() {
            heap[0] = heap[heap.count - 1]
            heap.removeLast()
            down(0)
        }
        for n in stride(from: heap.count / 2 - 1, through: 0, by: -1) { down(n) }
        var same: [Int] = []
        while let top = heap.first {
            // Every run's entry of the smallest key, oldest run first.
            same.removeAll(keepingCapacity: true)
            same.append(top)
            pop()
            while let next = heap.first, heads[next].hash == heads[top].hash, compareBytes(heads[next].key, heads[top].key) == 0 {
                same.append(next)
                pop()
            }
            var newest = heads[same[same.count - 1]]
            for n in same.dropLast() where heads[n].isPut || heads[n].hidesPut {
                newest.hidesPut = true
            }
            try emit(newest)
            for n in same where try readers[n].advance() {
                heads[n] = readers[n].current!
                heap.append(n)
                var child = heap.count - 1
                while child > 0 && less(heap[child], heap[(child - 1) / 2]) {
                    heap.swapAt(child, (child - 1) / 2)
                    child = (child - 1) / 2
                }
            }
        }
    }
}

/// One run read through a buffer; `current` is its entry at hand, valid
/// until `advance`.
private final class RunReader {
    private let file: FileDescriptor
    private var position: UInt64
    private let end: UInt64
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    private var start = 0
    private var count = 0
    private(set) var current: KeyNewest?

    init(_ file: FileDescriptor, _ range: Range<UInt64>, buffer: Int) throws {
        self.file = file
        position = range.lowerBound
        end = range.upperBound
        capacity = buffer
        self.buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        _ = try advance()
    }

    deinit { buffer.deallocate() }

    /// Moves to the next entry; false at the end of the run.
    func advance() throws -> Bool {
        if let current { start += Entry.size + current.key.count }
        guard try fill(Entry.size) else {
            current = nil
            return false
        }
        _ = try fill(Entry.size + Entry.keyLength(buffer + start))
        current = Entry.read(buffer + start)
        return true
    }

    /// Makes `n` bytes from `start` present, reading more of the run (and
    /// growing the buffer for a long key) if need be; false if the run has
    /// no bytes left at all.
    private func fill(_ n: Int) throws -> Bool {
        if count - start >= n { return true }
        if count == start && position == end { return false }
        if n > capacity {
            let larger = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 16)
            larger.copyMemory(from: buffer + start, byteCount: count - start)
            buffer.deallocate()
            buffer = larger
            capacity = n
        } else {
            memmove(buffer, buffer + start, count - start)
        }
        count -= start
        start = 0
        while count < n && position < end {
            let got = try file.read(at: position, into: UnsafeMutableRawBufferPointer(start: buffer + count, count: min(capacity - count, Int(end - position))))
            guard got > 0 else { break }
            count += got
            position += UInt64(got)
        }
        // The spill file is ours alone: short means the disk lost it.
        guard count >= n else { throw SystemError(errno: EIO, operation: "read", path: file.path) }
        return true
    }
}
