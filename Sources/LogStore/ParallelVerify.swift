// Verifying a large segment on two cores when the process may use them. Walking the
// headers is cheap; the checksums and key validation are most of the work,
// and each record's can be checked on its own once record boundaries are
// known. So the calling thread reads the segment in chunks and walks each
// strictly (structure only), cutting it after the last record that commits a
// batch; a second thread and the calling thread, whichever is free, verify
// whole chunks.
//
// The sequential reader stays the only judge of damage: the first chunk (in
// offset order) that is not clean, or the point where the strict walk stopped
// (damage, a torn batch, a record or batch larger than a chunk), is where the
// sequential walk takes over, from a batch boundary, so it reports exactly
// what a walk from the start would, with the clean chunks' counts before it.
//
// A caller that must walk the records itself (the index builder) uses
// `BackgroundVerification` instead: the verified walk runs on the other CPU
// through its own descriptor while the caller walks unverified, and the
// caller throws the verified walk's fault before any of its own.

import Dispatch
import Glibc
import LogFormat
import LogIO

/// The committed records a verification pass counted, up to the first damage.
public struct RecordTally: Sendable {
    public var records = 0
    public var puts = 0
    public var deletes = 0
    public var bytes: UInt64 = 0
    /// The last record counted: its offset, length and checksum.
    public var last: (offset: UInt64, length: Int, checksum: UInt32)?

    public init() {}

    public mutating func add(_ record: RecordView, at offset: UInt64) {
        records += 1
        if record.type == .put { puts += 1 } else { deletes += 1 }
        bytes += UInt64(record.length)
        last = (offset, record.length, record.checksum)
    }

    public mutating func add(_ other: RecordTally) {
        records += other.records
        puts += other.puts
        deletes += other.deletes
        bytes += other.bytes
        last = other.last ?? last
    }
}

extension FileDescriptor {
    /// Calls `body` with every valid record from `offset` up to `size`;
    /// throws a RecordFault at the first damaged one. `progress` is told the
    /// bytes read from `offset` after each read.
    func scanRecords(
        from offset: UInt64, size: UInt64, maxRecord: Int, verify: Bool, progress: ((UInt64) -> Void)?,
        _ body: (RecordView, UInt64) throws -> Void
    ) throws {
        try seek(to: offset)
        _ = posix_fadvise(raw, off_t(offset), 0, Int32(POSIX_FADV_SEQUENTIAL))
        let reader = RecordReader(source: self, maxRecord: maxRecord, verify: verify, startOffset: offset, limit: size)
        try reader.forEach(progress: progress, body)
    }

    /// Verifies the records from `offset` up to `size` and adds the committed
    /// ones to `tally`: what `scanRecords` with `verify` would count, and the
    /// same RecordFault thrown at the same place, `tally` then holding the
    /// records before it. Large inputs use every CPU the process may run on.
    /// A `chunkSize` forces the parallel path with chunks that small (tests).
    func tally(
        from offset: UInt64, size: UInt64, maxRecord: Int, progress: ((UInt64) -> Void)?, chunkSize: Int? = nil,
        into tally: inout RecordTally
    ) throws {
        var restart = offset
        let large = size - min(size, offset) >= ParallelVerifier.minimumSize && ParallelVerifier.processors > 1
        if large || chunkSize != nil {
            let verifier = ParallelVerifier(file: self, size: size, maxRecord: maxRecord, chunkSize: chunkSize ?? ParallelVerifier.chunkSize)
            guard let sequentialFrom = try verifier.run(from: offset, progress: progress, into: &tally) else { return }
            restart = sequentialFrom
        }
        try scanRecords(from: restart, size: size, maxRecord: maxRecord, verify: true, progress: progress.map { report in
            { report(restart - offset + $0) }
        }) { tally.add($0, at: $1) }
    }
}

/// A run of whole records, from a record that starts a batch to one that
/// commits one, read into `buffer`.
private final class Chunk: @unchecked Sendable {
    let buffer: ByteBuffer
    let offset: UInt64
    let length: Int
    // Written by the thread that verifies the chunk, read after `done` is set
    // under the verifier's mutex.
    var tally = RecordTally()
    var clean = false
    var done = false

    init(buffer: ByteBuffer, offset: UInt64, length: Int) {
        self.buffer = buffer
        self.offset = offset
        self.length = length
    }

    func verify(maxRecord: Int) {
        var walker = RecordWalker(
            UnsafeRawBufferPointer(start: buffer.base, count: length), mode: .verified, maxRecord: maxRecord, baseOffset: offset)
        var counted = RecordTally()
        while let step = walker.next() {
            guard case .record(let record, let at) = step else { return }
            counted.add(record, at: offset + UInt64(at))
        }
        tally = counted
        clean = true
    }
}

final class ParallelVerifier: @unchecked Sendable {
    /// Below this, a second thread costs more than it saves.
    static let minimumSize: UInt64 = 16 << 20
    /// Small enough that a chunk is still in the caches when a thread
    /// verifies it: 256 KiB against 1 MiB, `logscan --count` of 126 MB on two
    /// cores, 25 interleaved runs: median 49.4 against 58.0 ms.
    static let chunkSize = 256 << 10
    /// Chunks in flight: one being read, the others waiting or being verified.
    static let buffers = 4

    /// The CPUs this process may run on: taskset and cpusets narrow the
    /// affinity mask, not the count of CPUs online. Swift's Glibc module
    /// leaves out sched_getaffinity (a GNU extension), so the mask is read
    /// where the kernel prints it.
    static let processors: Int = {
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        guard let status = try? FileDescriptor.readAll("/proc/self/status") else { return online }
        let label = Array("\nCpus_allowed:".utf8)
        guard let start = status.indices.first(where: { status[$0...].starts(with: label) }) else { return online }
        var bits = 0
        for byte in status[(start + label.count)...] {
            if byte == UInt8(ascii: "\n") { break }
            if let digit = Hex.digitValue(byte) { bits += digit.nonzeroBitCount }
        }
        return bits > 0 ? bits : online
    }()

    let file: FileDescriptor
    let size: UInt64
    let maxRecord: Int
    let chunkSize: Int
    // Guarded by `mutex`: the chunks not yet added up, in offset order, and
    // how many of them a thread has taken to verify.
    private var chunks: [Chunk] = []
    private var taken = 0
    private var finished = false
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init(file: FileDescriptor, size: UInt64, maxRecord: Int, chunkSize: Int) {
        self.file = file
        self.size = size
        self.maxRecord = maxRecord
        self.chunkSize = chunkSize
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        changed.deallocate()
    }

    /// Adds the verified chunks' records to `tally`; returns where the
    /// sequential walk must go on from, or nil if the input was all verified.
    func run(from offset: UInt64, progress: ((UInt64) -> Void)?, into tally: inout RecordTally) throws -> UInt64? {
        let helper = DispatchGroup()
        DispatchQueue.global().async(group: helper) { self.work() }
        defer {
            pthread_mutex_lock(mutex)
            finished = true
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(mutex)
            helper.wait()
        }
        var free = (0..<Self.buffers).map { _ in ByteBuffer(capacity: chunkSize) }
        var position = offset
        var carried: (buffer: ByteBuffer, from: Int)?
        var sequentialFrom: UInt64?
        while sequentialFrom == nil {
            if free.isEmpty {
                if let damaged = collect(into: &tally, freeing: &free) { return damaged }
                continue
            }
            let buffer = free.removeLast()
            // The bytes after the previous cut start this chunk; its buffer
            // may be this one again, verified and given back meanwhile.
            if let (previous, from) = carried, previous === buffer {
                buffer.keep(from: from)
            } else {
                buffer.removeAll()
                if let (previous, from) = carried { buffer.append(previous.base + from, previous.count - from) }
            }
            let wanted = Int(min(UInt64(buffer.capacity - buffer.count), size - position - UInt64(buffer.count)))
            let n = try file.read(at: position + UInt64(buffer.count), into: UnsafeMutableRawBufferPointer(start: buffer.base + buffer.count, count: wanted))
            buffer.count += n
            let atEnd = n < wanted || position + UInt64(buffer.count) == size
            progress?(position + UInt64(buffer.count) - offset)
            let (cut, stopped) = commitEnd(buffer, complete: atEnd)
            if cut > 0 { submit(Chunk(buffer: buffer, offset: position, length: cut)) }
            if stopped || cut == 0 || atEnd && cut < buffer.count {
                sequentialFrom = position + UInt64(cut)
            } else if atEnd {
                break
            }
            carried = (buffer, cut)
            position += UInt64(cut)
        }
        while pending {
            if let damaged = collect(into: &tally, freeing: &free) { return damaged }
        }
        return sequentialFrom
    }

    /// The end of the last record in `buffer` that commits a batch (0 if
    /// none does), and whether the walk stopped at damage. Only the magic,
    /// the lengths and the flags are read, hopping from record to record:
    /// the chunk's verified walk checks everything else, and a cut that
    /// damage misplaced fails that check, which hands the chunk to the
    /// sequential walk.
    private func commitEnd(_ buffer: ByteBuffer, complete: Bool) -> (end: Int, damaged: Bool) {
        let base = UnsafeRawPointer(buffer.base)
        let count = buffer.count
        var at = 0
        var end = 0
        while at + RecordLayout.headerSize <= count {
            let p = base + at
            guard p.loadBigEndian(UInt32.self, at: RecordLayout.magicOffset) == RecordLayout.magic else { return (end, true) }
            let length = UInt64(RecordLayout.headerSize) + UInt64(p.loadBigEndian(UInt32.self, at: RecordLayout.keyLengthOffset))
                + UInt64(p.loadBigEndian(UInt32.self, at: RecordLayout.valueLengthOffset))
            guard length <= UInt64(maxRecord) else { return (end, true) }
            guard at + Int(length) <= count else { return (end, complete) }
            at += Int(length)
            if p.load(fromByteOffset: RecordLayout.flagsOffset, as: UInt8.self) & RecordLayout.continuesFlag == 0 { end = at }
        }
        return (end, complete && at < count)
    }

    private func submit(_ chunk: Chunk) {
        pthread_mutex_lock(mutex)
        chunks.append(chunk)
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
    }

    private var pending: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return !chunks.isEmpty
    }

    /// Verifies the next chunk nobody has taken; false once there is none.
    /// Called with `mutex` held, and returns with it held.
    private func verifyNext() -> Bool {
        guard taken < chunks.count else { return false }
        let chunk = chunks[taken]
        taken += 1
        pthread_mutex_unlock(mutex)
        chunk.verify(maxRecord: maxRecord)
        pthread_mutex_lock(mutex)
        chunk.done = true
        pthread_cond_broadcast(changed)
        return true
    }

    /// The second thread: verifies chunks until told to stop.
    private func work() {
        pthread_mutex_lock(mutex)
        while !finished {
            if !verifyNext() { pthread_cond_wait(changed, mutex) }
        }
        pthread_mutex_unlock(mutex)
    }

    /// Adds up the verified chunks at the front, giving back their buffers;
    /// if none is verified yet, verifies one itself or waits. Returns the
    /// offset of the first chunk that is not clean, if one came up.
    private func collect(into tally: inout RecordTally, freeing free: inout [ByteBuffer]) -> UInt64? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            var collected = false
            while let chunk = chunks.first, chunk.done {
                guard chunk.clean else { return chunk.offset }
                tally.add(chunk.tally)
                free.append(chunk.buffer)
                chunks.removeFirst()
                taken -= 1
                collected = true
            }
            if collected || chunks.isEmpty { return nil }
            if !verifyNext() { pthread_cond_wait(changed, mutex) }
        }
    }
}

/// A verified walk of a segment's first `size` bytes on another thread,
/// counting nothing: for a caller that reads the same records unverified
/// meanwhile and must fail as a verified read would.
final class BackgroundVerification: @unchecked Sendable {
    private let done = DispatchGroup()
    /// Its own descriptor: the caller's is being read, and moved, meanwhile.
    private let segment: SegmentReader
    // Written by the walking thread before it leaves `done`.
    private var fault: Error?

    init(_ segment: SegmentReader, upTo size: UInt64, maxRecord: Int) {
        self.segment = segment
        DispatchQueue.global().async(group: done) {
            let segment = self.segment
            do {
                try segment.file.scanRecords(from: 0, size: size, maxRecord: maxRecord, verify: true, progress: nil) { _, _ in }
            } catch let fault as RecordFault {
                self.fault = SegmentFault(path: segment.path, fault: fault)
            } catch {
                self.fault = error
            }
        }
    }

    /// Waits for the walk; the fault it found, if any.
    func wait() -> Error? {
        done.wait()
        return fault
    }
}
