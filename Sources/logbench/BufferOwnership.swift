// The buffer-ownership experiment: what decoding a segment costs in memory
// when each record's bytes are
//   copy   - copied out into heap storage of their own (a key and a value array),
//   slice  - kept as a window on the chunk they were read into, which the
//            window keeps alive (chunks are never reused), or
//   borrow - borrowed from RecordReader's buffer inside its callback only,
// each with every record dropped at once ("drop") or kept to the end
// ("retain"). A borrowed record cannot outlive the callback, so borrow+retain
// keeps each record's address (offset, length, checksum: 16 bytes) instead:
// the cost of remembering where records are and re-reading them later.
// Every cell reads 1 MiB at a time and verifies every record, so the cells
// differ only in who owns the bytes. Each samples its resident set, the bytes
// malloc has handed out and its mapped address space before decoding, at each
// quarter of the segment, and after (retained records still alive).
//
// Each cell runs in a process of its own (`logbench ownership-cell MODE
// retain|drop SEGMENT`): glibc does not give all freed memory back, and
// wait4's peak RSS is per process, so cells sharing a process would measure
// each other's leftovers. The parent only spawns them, checks that all six
// decoded the same records, and writes the report.

import Glibc
import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI

enum BufferOwnership {
    private enum Mode: String, CaseIterable {
        case copy, slice, borrow
    }

    /// The read size of every mode.
    private static let readSize = 1 << 20

    // MARK: - The parent: six cells and the report

    static func run(segment: String, records: Int, executable: String) throws -> (json: String, markdown: String) {
        let segmentBytes = try fileSize(segment)
        var cells: [Cell] = []
        for mode in Mode.allCases {
            for retain in [false, true] {
                let argv = [executable, "ownership-cell", mode.rawValue, retain ? "retain" : "drop", segment]
                cells.append(try Cell(mode: mode, retain: retain, run: try Runner.run(argv, capture: true)))
            }
        }
        try checkAgreement(cells, records: records)
        return (document(cells, segment: segment, segmentBytes: segmentBytes, records: records),
                markdown(cells, segmentBytes: segmentBytes, records: records))
    }

    private struct ReportError: Error, CustomStringConvertible {
        let description: String
    }

    /// One cell as the parent saw it: the runner's measurements and the
    /// child's JSON line, kept verbatim for the document.
    private struct Cell {
        let mode: Mode
        let retain: Bool
        let wallMicroseconds: UInt64
        let peakRSSKiB: Int
        let line: String
        let decoded: UInt64
        let checksum: String
        let before: MemoryUsage
        let during: [MemoryUsage]
        let after: MemoryUsage

        var name: String { "\(mode.rawValue)+\(retain ? "retain" : "drop")" }

        init(mode: Mode, retain: Bool, run: RunResult) throws {
            self.mode = mode
            self.retain = retain
            wallMicroseconds = run.microseconds
            peakRSSKiB = run.maxRSSKiB
            line = String(run.output.split(separator: "\n").last ?? "")
            let context = "ownership-cell \(mode.rawValue) \(retain ? "retain" : "drop")"
            let parsed: JSONValue
            do { parsed = try JSONValue.parse(line) } catch {
                throw ReportError(description: "\(context): \(error.message): \(line)")
            }
            let written = parsed["samples"]?.array ?? []
            let samples = written.compactMap(MemoryUsage.init(sample:))
            guard let decoded = parsed["records_decoded"]?.uint64, let checksum = parsed["checksum"]?.string,
                  samples.count == written.count, let before = samples.first, let after = samples.last,
                  before.phase == .before, after.phase == .after
            else { throw ReportError(description: "\(context): unexpected output: \(line)") }
            self.decoded = decoded
            self.checksum = checksum
            self.before = before
            self.after = after
            during = Array(samples.dropFirst().dropLast())
        }
    }

    /// Every cell must have decoded the same records, or the comparison is void.
    private static func checkAgreement(_ cells: [Cell], records: Int) throws {
        let reference = cells[0]
        for cell in cells where cell.decoded != UInt64(records) || cell.checksum != reference.checksum {
            throw ReportError(description: "buffer ownership: \(cell.name) decoded \(cell.decoded) records, checksum \(cell.checksum); "
                + "expected \(records) records and \(reference.name)'s checksum \(reference.checksum)")
        }
    }

    private static func document(_ cells: [Cell], segment: String, segmentBytes: Int, records: Int) -> String {
        let rows = cells.map { cell in
            // The child's object minus its opening brace, behind the parent's fields.
            "{\"mode\":\"\(cell.mode.rawValue)\",\"retain\":\(cell.retain),\"wall_ms\":\(milliseconds(cell.wallMicroseconds)),\"peak_rss_kib\":\(cell.peakRSSKiB),"
                + cell.line.dropFirst()
        }
        return """
        {"segment":\(String(decoding: JSONText.quoted(segment), as: UTF8.self)),"segment_bytes":\(segmentBytes),"records":\(records),\
        "read_size":\(readSize),"rss_source":"\(MemoryProbe.rssSource)","malloc_source":"\(MemoryProbe.mallocSource)",\
        "mapped_source":"\(MemoryProbe.mappedSource)",
        "cells":[
        \(rows.joined(separator: ",\n"))
        ]}

        """
    }

    private static func markdown(_ cells: [Cell], segmentBytes: Int, records: Int) -> String {
        var text = """
        ## Buffer ownership

        Decoding the \(records)-record segment (\(mib(segmentBytes / 1024)) MiB) with each record's bytes copied out, \
        kept as a slice of the \(readSize >> 20) MiB chunk it was read into, or borrowed inside RecordReader's callback; \
        *retain* keeps every decoded record to the end, which for *borrow* can only mean its address \
        (offset, length, checksum: 16 bytes). Each cell runs in its own process; \
        "after" is sampled once decoding is done, retained records still alive. \
        All six decoded the same records (checksum \(cells[0].checksum)). Samples: `reports/buffer-ownership.json`.

        | mode | retain | wall ms | peak RSS MiB | RSS after MiB | malloc'd after MiB | mapped after MiB |
        |---|---|--:|--:|--:|--:|--:|

        """
        for cell in cells {
            let malloced = cell.after.mallocBytes.map { mib($0 / 1024) } ?? "n/a"
            text += "| \(cell.mode.rawValue) | \(cell.retain ? "yes" : "no") | \(milliseconds(cell.wallMicroseconds)) | \(mib(cell.peakRSSKiB)) "
                + "| \(mib(cell.after.rssKiB)) | \(malloced) | \(mib(cell.after.mappedKiB)) |\n"
        }
        return text + "\n" + reading(cells, segmentBytes: segmentBytes, records: records).joined(separator: " ") + "\n"
    }

    // MARK: - Reading the numbers

    /// A few sentences, each chosen by comparing the measurements.
    private static func reading(_ cells: [Cell], segmentBytes: Int, records: Int) -> [String] {
        func cell(_ mode: Mode, _ retain: Bool) -> Cell { cells.first { $0.mode == mode && $0.retain == retain }! }
        return [
            growth(cells, segmentBytes: segmentBytes),
            borrowFlat(cell(.borrow, false)),
            slicesAgainstCopies(copy: cell(.copy, true), slice: cell(.slice, true), segmentBytes: segmentBytes, records: records),
            addresses(borrow: cell(.borrow, true), copy: cell(.copy, true), records: records),
            wallTimes(cells),
            allocatorKept(cells),
        ].compactMap { $0 }
    }

    /// RSS between the first and the last "during" sample.
    private static func rise(_ cell: Cell) -> Int { (cell.during.last?.rssKiB ?? 0) - (cell.during.first?.rssKiB ?? 0) }

    /// What a cell holds once decoded, over what it held before.
    private static func retainedKiB(_ cell: Cell) -> Int { cell.after.rssKiB - cell.before.rssKiB }

    private static func growth(_ cells: [Cell], segmentBytes: Int) -> String? {
        guard let sampled = cells.first?.during, sampled.count >= 2 else { return nil }
        let decodedBetweenKiB = (sampled.last!.records - sampled.first!.records) * (segmentBytes / 1024)
            / max(Int(cells[0].decoded), 1)
        // Growing by more than a twentieth of the bytes decoded is growing with the data.
        let growing = cells.filter { rise($0) * 20 > decodedBetweenKiB }
        let flat = cells.filter { rise($0) * 20 <= decodedBetweenKiB }
        func list(_ group: [Cell]) -> String { group.map { "\($0.name) (\(signedMiB(rise($0))))" }.joined(separator: ", ") }
        var sentence = "From the first to the last sample during decoding (\(mib(decodedBetweenKiB)) MiB of segment), "
        if !growing.isEmpty { sentence += "RSS grows with the data in \(list(growing))" }
        if !growing.isEmpty && !flat.isEmpty { sentence += " and " }
        if !flat.isEmpty { sentence += "stays flat in \(list(flat))" }
        return sentence + "."
    }

    private static func borrowFlat(_ borrow: Cell) -> String {
        let peakAbove = (borrow.during.map(\.rssKiB).max() ?? borrow.after.rssKiB) - borrow.before.rssKiB
        // What malloc holds while decoding but not after is the read buffer, as RecordReader sized it.
        let heldBytes = borrow.during.compactMap(\.mallocBytes).max().flatMap { held in borrow.after.mallocBytes.map { held - $0 } }
        let bufferKiB = max(readSize, heldBytes ?? 0) >> 10
        var buffer = "its read buffer (\(mib(bufferKiB)) MiB"
        if 2 * bufferKiB > 3 * (readSize >> 10) {
            buffer += ": RecordReader, asked for \(readSize >> 20) MiB, doubles its buffer once a record straddles two reads"
        }
        let size = peakAbove <= 2 * bufferKiB ? "about the size of \(buffer))" : "more than \(buffer))"
        return "Borrowing without retaining stays within \(mib(peakAbove)) MiB of its RSS before decoding, \(size)."
    }

    private static func slicesAgainstCopies(copy: Cell, slice: Cell, segmentBytes: Int, records: Int) -> String {
        let copyKiB = retainedKiB(copy), sliceKiB = retainedKiB(slice)
        let comparison = sliceKiB < copyKiB ? "less than" : "more than"
        return "Retained, slices cost \(mib(sliceKiB)) MiB of RSS, \(comparison) the \(mib(copyKiB)) MiB of copies "
            + "(\(perRecord(sliceKiB, records)) against \(perRecord(copyKiB, records)) bytes per record, "
            + "where the segment holds \(segmentBytes / max(records, 1))): slices pin whole chunks, headers included, "
            + "while copies keep only key and value but pay for two allocations per record."
    }

    private static func addresses(borrow: Cell, copy: Cell, records: Int) -> String {
        let borrowKiB = retainedKiB(borrow), copyKiB = retainedKiB(copy)
        let share = copyKiB > 0 ? "\(borrowKiB * 100 / copyKiB)% of what copies cost" : "while copies cost nothing measurable"
        return "Keeping addresses only (borrow, retain) costs \(mib(borrowKiB)) MiB (\(perRecord(borrowKiB, records)) bytes per record), "
            + "\(share); using a record then means re-reading it from the segment."
    }

    private static func wallTimes(_ cells: [Cell]) -> String {
        let fastest = cells.min { $0.wallMicroseconds < $1.wallMicroseconds }!
        let slowest = cells.max { $0.wallMicroseconds < $1.wallMicroseconds }!
        return "Wall time ranges from \(milliseconds(fastest.wallMicroseconds)) ms (\(fastest.name)) "
            + "to \(milliseconds(slowest.wallMicroseconds)) ms (\(slowest.name))."
    }

    /// Dropping cells whose RSS stays up after decoding although malloc holds
    /// nothing: memory freed to glibc but not returned to the kernel.
    private static func allocatorKept(_ cells: [Cell]) -> String? {
        let kept = cells.filter { cell in
            guard !cell.retain, let before = cell.before.mallocBytes, let after = cell.after.mallocBytes else { return false }
            return retainedKiB(cell) > 4 * (readSize >> 10) && (after - before) < readSize
        }
        guard !kept.isEmpty else { return nil }
        let list = kept.map { "\($0.name) (\(signedMiB(retainedKiB($0))))" }.joined(separator: ", ")
        return "After decoding, RSS stays above its starting point in \(list) though malloc reports nothing retained: "
            + "freed memory glibc kept rather than returned."
    }

    private static func perRecord(_ kib: Int, _ records: Int) -> Int { kib * 1024 / max(records, 1) }

    /// KiB as MiB with one decimal.
    private static func mib(_ kib: Int) -> String {
        let tenths = (abs(kib) * 10 + 512) / 1024
        return "\(kib < 0 ? "-" : "")\(tenths / 10).\(tenths % 10)"
    }

    private static func signedMiB(_ kib: Int) -> String { (kib >= 0 ? "+" : "") + mib(kib) + " MiB" }

    private static func milliseconds(_ microseconds: UInt64) -> String {
        let tenths = (microseconds + 50) / 100
        return "\(tenths / 10).\(tenths % 10)"
    }

    private static func fileSize(_ path: String) throws -> Int {
        let file = try FileDescriptor.open(path, O_RDONLY)
        defer { file.close() }
        return Int(try file.size())
    }

    // MARK: - The child: one cell

    static func runCell(mode: String, retain: Bool, segment: String) -> Never {
        func fail(_ message: String) -> Never {
            try? FileDescriptor.standardError.writeAll("logbench ownership-cell: \(message)\n")
            exit(ExitCode.usage.rawValue)
        }
        guard let mode = Mode(rawValue: mode) else { fail("unknown mode '\(mode)' (copy, slice or borrow)") }
        do {
            let file = try FileDescriptor.open(segment, O_RDONLY)
            let sampler = try Sampler(segmentSize: file.size())
            let outcome: Outcome
            switch mode {
            case .copy: outcome = try finish(decodeCopies(file, retain: retain, sampler: sampler), sampler)
            case .slice: outcome = try finish(decodeSlices(file, retain: retain, sampler: sampler), sampler)
            case .borrow: outcome = try finish(decodeBorrowed(file, retain: retain, sampler: sampler), sampler)
            }
            try FileDescriptor.standardOutput.writeAll(outcome.json + "\n")
            exit(0)
        } catch let fault as RecordFault {
            fail("\(segment): \(fault.message)")
        } catch {
            fail(Failure.describe(error).message)
        }
    }

    private struct Outcome {
        let samples: [MemoryUsage]
        let digest: Digest
        let retained: Int

        var json: String {
            "{\"samples\":[\(samples.map(\.json).joined(separator: ","))],\"records_decoded\":\(digest.count),"
                + "\"records_retained\":\(retained),\"checksum\":\"\(digest.hex)\"}"
        }
    }

    /// Takes the "after" sample while the retained records are still alive,
    /// the decoder and its buffers already gone.
    private static func finish<Record>(_ decoded: (Digest, [Record]), _ sampler: Sampler) throws -> Outcome {
        let (digest, kept) = decoded
        try withExtendedLifetime(kept) { try sampler.take(.after, records: digest.count) }
        return Outcome(samples: sampler.samples, digest: digest, retained: kept.count)
    }

    /// An order-sensitive digest of every record's key and value, the same
    /// whoever holds the bytes; it is also what keeps each cell from
    /// skipping the work of touching them.
    private struct Digest {
        private(set) var count = 0
        private var value: UInt64 = 0xCBF2_9CE4_8422_2325

        mutating func add(key: UnsafeRawBufferPointer, value bytes: UnsafeRawBufferPointer) {
            var crc = CRC32()
            crc.update(key)
            crc.update(bytes)
            // The key's length separates key from value.
            value = (value ^ (UInt64(key.count) << 32 | UInt64(crc.value))) &* 0x100_0000_01B3
            count += 1
        }

        var hex: String {
            let digits = String(value, radix: 16)
            return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
        }
    }

    // MARK: copy

    private struct CopiedRecord {
        let key: [UInt8]
        let value: [UInt8]
    }

    private static func decodeCopies(_ file: FileDescriptor, retain: Bool, sampler: Sampler) throws -> (Digest, [CopiedRecord]) {
        let reader = RecordReader(source: file, maxRecord: RecordLayout.defaultMaxRecord, chunk: readSize)
        var digest = Digest()
        var kept: [CopiedRecord] = []
        try sampler.take(.before, records: 0)
        try reader.forEach { view, offset in
            let record = CopiedRecord(key: Array(view.key), value: Array(view.value))
            record.key.withUnsafeBytes { key in record.value.withUnsafeBytes { digest.add(key: key, value: $0) } }
            if retain { kept.append(record) }
            try sampler.progress(through: offset + UInt64(view.length), records: digest.count)
        }
        return (digest, kept)
    }

    // MARK: slice

    /// A read buffer filled once and never reused, freed with the last slice
    /// into it.
    private final class Chunk {
        let base: UnsafeMutableRawPointer
        let capacity: Int
        var count = 0

        init(capacity: Int) {
            self.capacity = capacity
            base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        }

        deinit { base.deallocate() }

        func bytes(from start: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: base + start, count: count - start)
        }

        /// Reads until full or at the end of the file; true at the end.
        func fill(from file: FileDescriptor) throws -> Bool {
            while count < capacity {
                let n = try file.read(into: UnsafeMutableRawBufferPointer(start: base + count, count: capacity - count))
                if n == 0 { return true }
                count += n
            }
            return false
        }
    }

    /// A record as a window on its chunk: retaining it retains the chunk.
    private struct SlicedRecord {
        let chunk: Chunk
        let start: UInt32
        let length: UInt32
    }

    private static func decodeSlices(_ file: FileDescriptor, retain: Bool, sampler: Sampler) throws -> (Digest, [SlicedRecord]) {
        var digest = Digest()
        var kept: [SlicedRecord] = []
        let first = Chunk(capacity: readSize)
        try sampler.take(.before, records: 0)
        try scanChunks(file, startingWith: first) { chunk, view, start, offset in
            let record = SlicedRecord(chunk: chunk, start: UInt32(start), length: UInt32(view.length))
            digest.add(key: view.key, value: view.value)
            if retain { kept.append(record) }
            try sampler.progress(through: offset + UInt64(view.length), records: digest.count)
        }
        return (digest, kept)
    }

    /// Calls `body` with each verified record, its chunk, its start in the
    /// chunk and its offset in the file. A record cut off by the end of a
    /// chunk is copied to the start of the next one, which is made larger
    /// if the record needs it.
    private static func scanChunks(_ file: FileDescriptor, startingWith first: Chunk,
                                   _ body: (Chunk, RecordView, Int, UInt64) throws -> Void) throws {
        var chunk = first
        var chunkOffset: UInt64 = 0
        while true {
            let atEnd = try chunk.fill(from: file)
            var start = 0
            var needed = RecordLayout.headerSize
            records: while start < chunk.count {
                let view: RecordView
                do {
                    view = try RecordView.parse(chunk.bytes(from: start), maxRecord: RecordLayout.defaultMaxRecord, verify: true)
                } catch .incompleteHeader where !atEnd {
                    break records
                } catch .incompletePayload(_, let length) where !atEnd {
                    needed = length
                    break records
                } catch {
                    throw RecordFault(offset: chunkOffset + UInt64(start), error: error)
                }
                try body(chunk, view, start, chunkOffset + UInt64(start))
                start += view.length
            }
            // At the end every byte was either a record or thrown about.
            if atEnd { return }
            let next = Chunk(capacity: max(readSize, needed))
            next.count = chunk.count - start
            next.base.copyMemory(from: chunk.base + start, byteCount: next.count)
            chunkOffset += UInt64(start)
            chunk = next
        }
    }

    // MARK: borrow

    /// Where a record is, enough to read it again and check it.
    private struct RecordAddress {
        let offset: UInt64
        let length: UInt32
        let checksum: UInt32
    }

    private static func decodeBorrowed(_ file: FileDescriptor, retain: Bool, sampler: Sampler) throws -> (Digest, [RecordAddress]) {
        let reader = RecordReader(source: file, maxRecord: RecordLayout.defaultMaxRecord, chunk: readSize)
        var digest = Digest()
        var kept: [RecordAddress] = []
        try sampler.take(.before, records: 0)
        try reader.forEach { view, offset in
            digest.add(key: view.key, value: view.value)
            if retain { kept.append(RecordAddress(offset: offset, length: UInt32(view.length), checksum: view.checksum)) }
            try sampler.progress(through: offset + UInt64(view.length), records: digest.count)
        }
        return (digest, kept)
    }

    // MARK: - Sampling memory

    private enum Phase: String {
        case before, during, after
    }

    /// One reading of the process's memory.
    private struct MemoryUsage {
        var phase: Phase
        var records: Int
        var rssKiB: Int
        var mallocBytes: Int?
        var mappedKiB: Int

        var json: String {
            "{\"phase\":\"\(phase.rawValue)\",\"records_decoded\":\(records),\"rss_kib\":\(rssKiB),"
                + "\"malloc_bytes\":\(mallocBytes.map(String.init) ?? "null"),\"mapped_kib\":\(mappedKiB)}"
        }

        init(phase: Phase, records: Int, rssKiB: Int, mallocBytes: Int?, mappedKiB: Int) {
            self.phase = phase
            self.records = records
            self.rssKiB = rssKiB
            self.mallocBytes = mallocBytes
            self.mappedKiB = mappedKiB
        }

        /// Reads back a sample the child wrote; malloc_bytes may be null.
        init?(sample: JSONValue) {
            func number(_ key: String) -> Int? { sample[key]?.uint64.map(Int.init) }
            guard let phase = sample["phase"]?.string.flatMap(Phase.init(rawValue:)), let records = number("records_decoded"),
                  let rssKiB = number("rss_kib"), let mappedKiB = number("mapped_kib")
            else { return nil }
            self.init(phase: phase, records: records, rssKiB: rssKiB, mallocBytes: number("malloc_bytes"), mappedKiB: mappedKiB)
        }
    }

    /// Samples before decoding, as the decoder passes each quarter of the
    /// segment's bytes (the record count is not known in advance), and after.
    private final class Sampler {
        private(set) var samples: [MemoryUsage] = []
        private let segmentSize: UInt64
        private var quarter: UInt64 = 1

        init(segmentSize: UInt64) {
            self.segmentSize = segmentSize
            samples.reserveCapacity(8)
        }

        func take(_ phase: Phase, records: Int) throws {
            let pages = try MemoryProbe.statmPages()
            samples.append(MemoryUsage(phase: phase, records: records, rssKiB: pages.resident * MemoryProbe.pageKiB,
                                       mallocBytes: MemoryProbe.mallocBytes(), mappedKiB: pages.size * MemoryProbe.pageKiB))
        }

        /// Called after each record, with the file offset where it ends.
        @inline(__always)
        func progress(through end: UInt64, records: Int) throws {
            while quarter < 4 && end * 4 >= segmentSize * quarter {
                try take(.during, records: records)
                quarter += 1
            }
        }
    }

    private enum MemoryProbe {
        static let rssSource = "/proc/self/statm resident"
        static let mappedSource = "/proc/self/statm size (VmSize: all mappings, touched or not)"
        #if arch(x86_64)
        static let mallocSource = "mallinfo2 uordblks + hblkhd (heap chunks in use plus mmapped chunks)"
        #else
        static let mallocSource = "unavailable on this architecture"
        #endif

        static let pageKiB = Int(sysconf(Int32(_SC_PAGESIZE))) / 1024

        /// The first two fields of /proc/self/statm: all mapped pages, resident pages.
        static func statmPages() throws -> (size: Int, resident: Int) {
            let file = try FileDescriptor.open("/proc/self/statm", O_RDONLY)
            defer { file.close() }
            // On the stack: sampling must not disturb the heap it measures.
            return try withUnsafeTemporaryAllocation(byteCount: 256, alignment: 1) { buffer in
                let n = try file.read(into: buffer)
                var fields = (size: 0, resident: 0), field = 0
                for byte in UnsafeRawBufferPointer(rebasing: buffer[..<n]) {
                    guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else {
                        field += 1
                        if field == 2 { break }
                        continue
                    }
                    let digit = Int(byte - UInt8(ascii: "0"))
                    if field == 0 { fields.size = fields.size * 10 + digit } else { fields.resident = fields.resident * 10 + digit }
                }
                return fields
            }
        }

        /// Bytes malloc has handed out and not had back, small and mmapped alike.
        static func mallocBytes() -> Int? {
            #if arch(x86_64)
            var info = MallocInfo2()
            mallinfo2(&info)
            return info.uordblks + info.hblkhd
            #else
            return nil
            #endif
        }
    }
}

#if arch(x86_64)
/// glibc's `struct mallinfo2` from <malloc.h>, which Swift's Glibc module
/// does not import: ten size_t fields.
private struct MallocInfo2 {
    var arena = 0, ordblks = 0, smblks = 0, hblks = 0, hblkhd = 0
    var usmblks = 0, fsmblks = 0, uordblks = 0, fordblks = 0, keepcost = 0
}

/// `struct mallinfo2 mallinfo2(void)`. C returns the 80-byte struct through a
/// hidden pointer passed in rdi; Swift's convention would pass it in rax, so
/// the pointer is declared as the first argument, which Swift puts in rdi.
@_silgen_name("mallinfo2")
private func mallinfo2(_ result: UnsafeMutablePointer<MallocInfo2>)
#endif
