// The segment format's model, the allocation hooks and the checksum-resealing
// mutator that the record-walker and recovery targets share: each names this file in
// a `// Shared:` line, and Fuzz/run.sh compiles it into them.

// The library under test: Common, or the modules it is split into.
#if canImport(Common)
@testable import Common
#endif
#if canImport(LogFormat)
@testable import LogFormat
#endif
#if canImport(LogIO)
@testable import LogIO
#endif
#if canImport(LogJSON)
@testable import LogJSON
#endif
#if canImport(LogStore)
@testable import LogStore
#endif
#if canImport(Glibc)
import Glibc
#endif

// MARK: - The model of the format

enum Model {
    static let magic: [UInt8] = [0x89, 0x4C, 0x4F, 0x47]
    static let headerSize = 28

    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc(_ parts: ArraySlice<UInt8>...) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for part in parts {
            for b in part { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return ~c
    }

    /// The first 0x89 (the magic's first byte) in `a[from..<to]`, or `to`.
    /// (memchr: scanning byte by byte in instrumented code is slow.)
    static func nextMagicByte(_ a: [UInt8], from: Int, to: Int) -> Int {
        guard from < to else { return to }
        return a.withUnsafeBytes { raw in
            guard let hit = memchr(raw.baseAddress! + from, 0x89, to - from) else { return to }
            return UnsafeRawPointer(hit) - raw.baseAddress!
        }
    }

    static func be32(_ a: [UInt8], _ i: Int) -> UInt32 {
        UInt32(a[i]) << 24 | UInt32(a[i + 1]) << 16 | UInt32(a[i + 2]) << 8 | UInt32(a[i + 3])
    }

    static func be64(_ a: [UInt8], _ i: Int) -> UInt64 { UInt64(be32(a, i)) << 32 | UInt64(be32(a, i + 4)) }

    struct Header: Equatable {
        var type: UInt8
        var continues: Bool
        var keyLength: Int
        var valueLength: Int
        var timestamp: UInt64
        var checksum: UInt32
        var length: Int { headerSize + keyLength + valueLength }
    }

    struct Record: Equatable, CustomStringConvertible {
        var offset: Int
        var header: Header
        var length: Int { header.length }
        var end: Int { offset + length }
        var description: String { "record at \(offset) (\(length) bytes, \(header))" }
    }

    /// The header at `p`, checked field by field as the bytes arrive.
    static func header(_ a: [UInt8], at p: Int, maxRecord: Int) -> Result<Header, RecordError> {
        let available = a.count - p
        let m = min(4, available)
        for k in 0..<m where a[p + k] != magic[k] { return .failure(.badMagic(MagicBytes(a[p..<(p + m)]))) }
        if available < 5 { return .failure(.incompleteHeader(available: available)) }
        if a[p + 4] != 1 { return .failure(.unsupportedVersion(a[p + 4])) }
        if available < 6 { return .failure(.incompleteHeader(available: available)) }
        let type = a[p + 5]
        if type != 1 && type != 2 { return .failure(.unknownType(type)) }
        if available < 7 { return .failure(.incompleteHeader(available: available)) }
        let flags = a[p + 6]
        if flags & 0xFE != 0 { return .failure(.unknownFlags(flags)) }
        if available < 8 { return .failure(.incompleteHeader(available: available)) }
        if a[p + 7] != 0 { return .failure(.nonZeroReserved(a[p + 7])) }
        if available < 12 { return .failure(.incompleteHeader(available: available)) }
        let k = be32(a, p + 8)
        if k == 0 { return .failure(.emptyKey) }
        if available < 16 { return .failure(.incompleteHeader(available: available)) }
        let v = be32(a, p + 12)
        if type == 2 && v != 0 { return .failure(.deleteWithValue(valueLength: v)) }
        let length = UInt64(headerSize) + UInt64(k) + UInt64(v)
        if length > UInt64(maxRecord) { return .failure(.tooLarge(length: length, limit: maxRecord)) }
        if available < headerSize { return .failure(.incompleteHeader(available: available)) }
        return .success(Header(type: type, continues: flags & 1 != 0, keyLength: Int(k), valueLength: Int(v),
                               timestamp: be64(a, p + 16), checksum: be32(a, p + 24)))
    }

    enum Outcome {
        case record(Record)
        /// `extent`: the declared length, when the header itself is intact.
        case fault(RecordError, extent: Int?)
    }

    /// The record at `p`, or why there is none.
    static func parse(_ a: [UInt8], at p: Int, maxRecord: Int, verify: Bool) -> Outcome {
        let h: Header
        switch header(a, at: p, maxRecord: maxRecord) {
        case .failure(let error): return .fault(error, extent: nil)
        case .success(let parsed): h = parsed
        }
        let available = a.count - p
        if available < h.length { return .fault(.incompletePayload(available: available, length: h.length), extent: h.length) }
        if verify {
            let computed = crc(a[p..<(p + 24)], a[(p + headerSize)..<(p + h.length)])
            if computed != h.checksum { return .fault(.checksumMismatch(stored: h.checksum, computed: computed), extent: h.length) }
            let key = a[(p + headerSize)..<(p + headerSize + h.keyLength)]
            if String(validating: key, as: UTF8.self) == nil { return .fault(.keyNotUTF8, extent: h.length) }
        }
        return .record(Record(offset: p, header: h))
    }

    /// A strict reader: records from `from` until the first error.
    static func strict(_ a: [UInt8], from: Int, maxRecord: Int, verify: Bool) -> (records: [Record], fault: RecordFault?) {
        var records: [Record] = []
        var p = from
        while p < a.count {
            switch parse(a, at: p, maxRecord: maxRecord, verify: verify) {
            case .record(let r):
                records.append(r)
                p = r.end
            case .fault(let error, _):
                return (records, RecordFault(offset: UInt64(p), error: error))
            }
        }
        return (records, nil)
    }

    /// What a batch-aware reader hands out of a strict read: only records of
    /// committed batches; a batch still open at the fault (or at the end) is
    /// the fault, an uncommitted batch at its first record (docs/batches.md).
    static func committed(_ read: (records: [Record], fault: RecordFault?)) -> (records: [Record], fault: RecordFault?) {
        var done: [Record] = []
        var open: [Record] = []
        for r in read.records {
            open.append(r)
            if !r.header.continues { done += open; open = [] }
        }
        if let first = open.first {
            return (done, RecordFault(offset: UInt64(first.offset), error: .uncommittedBatch(records: open.count)))
        }
        return (done, read.fault)
    }

    /// Batch grouping of a resynchronising walk (docs/batches.md): records
    /// of a batch appear with its last one; a batch open at damage or at the
    /// end is reported as an uncommitted batch over its own records.
    static func grouped(_ events: [Event], size: Int) -> [Event] {
        var out: [Event] = []
        var open: [Record] = []
        var damage: (fault: RecordFault, end: Int)?
        func damaged(_ fault: RecordFault, end: Int) {
            let start = open.first.map { RecordFault(offset: UInt64($0.offset), error: .uncommittedBatch(records: open.count)) } ?? fault
            open = []
            damage = (damage?.fault ?? start, end)
        }
        for event in events {
            switch event {
            case .record(let r):
                open.append(r)
                guard !r.header.continues else { continue }
                if let d = damage { out.append(.damage(d.fault, end: d.end)) }
                damage = nil
                out += open.map { .record($0) }
                open = []
            case .damage(let fault, let end):
                damaged(fault, end: end)
            }
        }
        if let first = open.first { damaged(RecordFault(offset: UInt64(first.offset), error: .uncommittedBatch(records: open.count)), end: size) }
        if let d = damage { out.append(.damage(d.fault, end: d.end)) }
        return out
    }

    /// Whether the damaged record at `p` checks out, its key or value length
    /// corrected to end at `next`: then its length field was the damage.
    static func correctedLength(_ a: [UInt8], at p: Int, header h: Header, endingAt next: Int) -> Bool {
        let payload = next - p - headerSize
        guard payload > 0 else { return false }
        var tries: [(Int, Int)] = []
        if payload >= h.keyLength { tries.append((h.keyLength, payload - h.keyLength)) }
        if payload > h.valueLength { tries.append((payload - h.valueLength, h.valueLength)) }
        for (k, v) in tries where k <= Int(UInt32.max) && v <= Int(UInt32.max) {
            var head = Array(a[p..<(p + 24)])
            for (i, shift) in [24, 16, 8, 0].enumerated() {
                head[8 + i] = UInt8(truncatingIfNeeded: k >> shift)
                head[12 + i] = UInt8(truncatingIfNeeded: v >> shift)
            }
            if crc(head[0..<24], a[(p + headerSize)..<next]) == h.checksum { return true }
        }
        return false
    }

    enum Event: Equatable, CustomStringConvertible {
        case record(Record)
        case damage(RecordFault, end: Int)
        var description: String {
            switch self {
            case .record(let r): return r.description
            case .damage(let f, let end): return "damage \(f.offset)..<\(end): \(f.error.reason)"
            }
        }
    }

    enum Extent {
        /// The header does not parse: the extent is unknown.
        case none
        /// The header parses and the bytes agree with its length.
        case intact(end: Int)
        /// The header parses, but a chain of valid records that starts at
        /// `chain`, inside the extent, contradicts its length.
        case contradicted(chain: Int)
        /// The record checks out with its length corrected to end at `next`,
        /// a valid record inside the extent: the length was the damage.
        case corrected(next: Int)
    }

    /// The declared extent of the damaged record at `p` (RecordWalker.swift): its
    /// header is intact if it parses and the bytes agree with its length.
    /// They disagree when a chain of valid records found inside the extent
    /// (searching from p + 1, then on from the end of each chain that stops
    /// inside it) runs across the extent's end, or, for an extent past the
    /// end of the input, reaches exactly the end of the input.
    static func extent(_ a: [UInt8], at p: Int, maxRecord: Int) -> Extent {
        guard case .success(let h) = header(a, at: p, maxRecord: maxRecord) else { return .none }
        let end = p + h.length
        let limit = min(end, a.count)
        var candidate = p + 1
        while candidate < limit {
            candidate = nextMagicByte(a, from: candidate, to: limit)
            guard candidate < limit else { break }
            guard case .record = parse(a, at: candidate, maxRecord: maxRecord, verify: true) else {
                candidate += 1
                continue
            }
            if correctedLength(a, at: p, header: h, endingAt: candidate) { return .corrected(next: candidate) }
            var chainEnd = candidate
            while chainEnd < end, chainEnd < a.count, case .record(let r) = parse(a, at: chainEnd, maxRecord: maxRecord, verify: true) {
                chainEnd = r.end
            }
            if chainEnd > end { return .contradicted(chain: candidate) }
            candidate = chainEnd
        }
        return .intact(end: end)
    }

    /// How the scan goes on after a header whose length is contradicted.
    enum Rule {
        /// The contract (RecordWalker.swift): a contradicted length is itself
        /// the damage and must not hide the records inside its extent, so
        /// the search goes on from the damaged record's next byte, as for a
        /// header that does not parse.
        case documented
        /// From the chain that contradicted the length, skipping any valid
        /// record inside the extent before it (what the code did when this
        /// target was written; used only to name that difference).
        case contradictingChain
    }

    /// The resynchronising walk of the recovery contract: after damage at
    /// `p`, the next record is the first valid one at or after the end of
    /// the damaged record's declared extent if its header is intact, else the
    /// first valid one after `p`, byte by byte.
    static func walk(_ a: [UInt8], from: Int, maxRecord: Int, rule: Rule = .documented) -> [Event] {
        var events: [Event] = []
        var p = from
        while p < a.count {
            switch parse(a, at: p, maxRecord: maxRecord, verify: true) {
            case .record(let r):
                events.append(.record(r))
                p = r.end
            case .fault(let error, _):
                var q: Int
                switch (extent(a, at: p, maxRecord: maxRecord), rule) {
                case (.none, _), (.contradicted, .documented): q = p + 1
                case (.contradicted(let chain), .contradictingChain): q = chain
                case (.corrected(let next), _): q = next
                case (.intact(let end), _): q = end
                }
                while q < a.count {
                    q = nextMagicByte(a, from: q, to: a.count)
                    if q < a.count, case .record = parse(a, at: q, maxRecord: maxRecord, verify: true) { break }
                    q += 1
                }
                let end = min(q, a.count)
                events.append(.damage(RecordFault(offset: UInt64(p), error: error), end: end))
                p = end
            }
        }
        return events
    }
}

// MARK: - Allocations

@_extern(c, "__sanitizer_install_malloc_and_free_hooks")
func installMallocHooks(
    _ onMalloc: (@convention(c) (UnsafeRawPointer?, Int) -> Void)?, _ onFree: (@convention(c) (UnsafeRawPointer?) -> Void)?
) -> Int32

nonisolated(unsafe) var trackingAllocations = false
nonisolated(unsafe) var largestAllocation = 0
nonisolated(unsafe) var hooksInstalled = false

/// Runs `body` and returns the size of the largest single allocation it made.
func largestAllocation(during body: () -> Void) -> Int {
    if !hooksInstalled {
        hooksInstalled = true
        _ = installMallocHooks({ _, size in
            if trackingAllocations && size > largestAllocation { largestAllocation = size }
        }, nil)
    }
    largestAllocation = 0
    trackingAllocations = true
    body()
    trackingAllocations = false
    return largestAllocation
}


// MARK: - Mutator

@_extern(c, "LLVMFuzzerMutate")
func LLVMFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

struct Random {
    var state: UInt64
    init(_ seed: UInt32) { state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    mutating func chance(_ oneIn: UInt64) -> Bool { next() % oneIn == 0 }
}

/// libFuzzer's mutation, then sometimes the lengths of one header stretched to
/// reach the next magic, and most of the record-shaped ranges resealed.
@_cdecl("LLVMFuzzerCustomMutator")
public func customMutator(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    var random = Random(seed)
    let n = LLVMFuzzerMutate(data, size, maxSize)
    if random.chance(3) { return n }
    func isMagic(_ q: Int) -> Bool {
        q + 4 <= n && data[q] == 0x89 && data[q + 1] == 0x4C && data[q + 2] == 0x4F && data[q + 3] == 0x47
    }
    func load32(_ q: Int) -> Int { Int(data[q]) << 24 | Int(data[q + 1]) << 16 | Int(data[q + 2]) << 8 | Int(data[q + 3]) }
    func store32(_ v: UInt32, _ q: Int) {
        data[q] = UInt8(v >> 24); data[q + 1] = UInt8(v >> 16 & 0xFF); data[q + 2] = UInt8(v >> 8 & 0xFF); data[q + 3] = UInt8(v & 0xFF)
    }
    var starts: [Int] = []
    var q = 0
    while q < n, let hit = memchr(data + q, 0x89, n - q) {
        q = UnsafeMutableRawPointer(hit) - UnsafeMutableRawPointer(data)
        if isMagic(q) { starts.append(q) }
        q += 1
    }
    if !starts.isEmpty && random.chance(4) {
        // Make one header's lengths reach exactly the next magic (or the end).
        let pick = Int(random.next() % UInt64(starts.count))
        let q = starts[pick]
        let next = pick + 1 < starts.count ? starts[pick + 1] : n
        let room = next - q - 28
        if q + 28 <= n && room >= 1 {
            let k = min(max(1, load32(q + 8)), room)
            data[q + 4] = 1
            data[q + 6] &= 1
            data[q + 7] = 0
            if data[q + 5] != 1 && data[q + 5] != 2 { data[q + 5] = 1 }
            if room - k > 0 { data[q + 5] = 1 }
            store32(UInt32(k), q + 8)
            store32(UInt32(room - k), q + 12)
        }
    }
    // Reseal from the last candidate back, so a record holding another one
    // is sealed over its inner record's final bytes.
    for q in starts.reversed() where q + 28 <= n && !random.chance(4) {
        let length = 28 + load32(q + 8) + load32(q + 12)
        guard length <= n - q else { continue }
        let a = UnsafeBufferPointer(start: data + q, count: length)
        store32(Model.crc(ArraySlice(a[0..<24]), ArraySlice(a[28...])), q + 24)
    }
    return n
}
