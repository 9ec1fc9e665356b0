// Fuzz target `record-walker`: arbitrary bytes as a segment, read by every
// record reader logkit has, each checked against an independent model of
// docs/format.md written below (a table-driven CRC-32, the stdlib's UTF-8
// validation, the rules in the order the bytes arrive).
//
// Invariants (names for FUZZ_SKIP, see Fuzz/README.md):
//   header-prefix  RecordHeader.parse of every prefix of the first 28 bytes
//                  fails with the model's error, or succeeds with its fields
//   reader         RecordReader (verify on and off, tiny and large chunks, a
//                  small --max-record, a start offset) yields exactly the
//                  model's valid prefix and throws the model's first error at
//                  the model's offset
//   view-bytes     every record handed out is the input's bytes at its offset
//   walker         RecordWalker, strict and verified, over all of the input or
//                  a prefix of it marked incomplete (a streaming read): the
//                  model's records, then its first error (at baseOffset plus
//                  the position) or `.partial` with the bytes needed
//   sequence       RecordSequence yields the model's structurally valid prefix
//   walk-tiling    Recovery.walk reports records and damage that tile the
//                  input: in order, never overlapping, inside it, each
//                  damaged range followed by a record
//   resync-extent  a resync never yields a record inside the declared extent
//                  of a damaged record whose header is intact (it parses and
//                  no chain of valid records inside runs across its end; see
//                  Model.extent)
//   walk-model     Recovery.walk gives exactly the model's records, errors
//                  and resync points (the first valid record allowed)
//   resync-skips-records
//                  the one walk-model difference named apart: after a header
//                  whose length a chain of records contradicts, the scan
//                  resumed at that chain instead of byte by byte, skipping
//                  valid records before it
//   record-at      FileDescriptor.record(at:) (logscan --at, logidx get) at
//                  any offset gives the model's record or error
//   alloc-reader   RecordReader never allocates more than 4 x (input + chunk)
//                  + 4 KiB: memory follows the bytes present, not a declared length
//   alloc-at       record(at:) never allocates more than 2 x input + 4 KiB
//
// A custom mutator reseals CRCs of record-shaped byte ranges after libFuzzer's
// own mutation, so inputs keep reaching the checks behind the checksum.

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

// The format's model, the allocation hooks and the mutator that reseals
// checksums live in Fuzz/shared/segment-model.swift, the harness (say,
// check, ScratchFile) in Fuzz/shared/harness.swift:
// Shared: segment-model
// Shared: harness

// MARK: - Checks

func modelRecord(_ view: RecordView, offset: UInt64) -> Model.Record {
    Model.Record(offset: Int(offset), header: Model.Header(
        type: view.header.type.rawValue, continues: view.header.continues, keyLength: Int(view.header.keyLength),
        valueLength: Int(view.header.valueLength), timestamp: view.timestamp, checksum: view.checksum))
}

func checkBytes(_ view: RecordView, offset: UInt64, _ a: [UInt8], _ what: String) {
    let o = Int(offset)
    check("view-bytes", o >= 0 && o + view.length <= a.count, "\(what): record at \(o) (\(view.length) bytes) outside the \(a.count)-byte input")
    guard o + view.length <= a.count else { return }
    let k = Int(view.header.keyLength)
    check("view-bytes", Array(view.bytes) == Array(a[o..<(o + view.length)]), "\(what): record at \(o) is not the input's bytes")
    check("view-bytes", Array(view.key) == Array(a[(o + 28)..<(o + 28 + k)]), "\(what): key of record at \(o) is not the input's bytes")
    check("view-bytes", Array(view.value) == Array(a[(o + 28 + k)..<(o + view.length)]), "\(what): value of record at \(o) is not the input's bytes")
}

func checkHeaderPrefixes(_ a: [UInt8], maxRecord: Int) {
    for k in 0...min(28, a.count) {
        let prefix = Array(a[0..<k])
        let expected = Model.header(prefix, at: 0, maxRecord: maxRecord)
        let got: Result<RecordHeader, RecordError> = prefix.withUnsafeBytes { raw in
            Result { () throws(RecordError) in try RecordHeader.parse(raw, maxRecord: maxRecord) }
        }
        switch (expected, got) {
        case (.failure(let e), .failure(let g)):
            check("header-prefix", e == g, "first \(k) bytes: error \(g.reason), model says \(e.reason)")
        case (.success(let e), .success(let g)):
            let h = Model.Header(type: g.type.rawValue, continues: g.continues, keyLength: Int(g.keyLength),
                                 valueLength: Int(g.valueLength), timestamp: g.timestamp, checksum: g.checksum)
            check("header-prefix", e == h && g.length == e.length, "first \(k) bytes: header \(h), model says \(e)")
        case (.failure(let e), .success(let g)):
            check("header-prefix", false, "first \(k) bytes: accepted header \(g), model says \(e.reason)")
        case (.success(let e), .failure(let g)):
            check("header-prefix", false, "first \(k) bytes: error \(g.reason), model accepts \(e)")
        }
    }
}

func checkReader(_ a: [UInt8], chunk: Int, maxRecord: Int, verify: Bool, from: Int) {
    let what = "RecordReader(chunk \(chunk), maxRecord \(maxRecord), verify \(verify), from \(from))"
    var records: [Model.Record] = []
    var fault: RecordFault?
    var other: (any Error)?
    scratch.rewind(to: from)
    let largest = largestAllocation {
        let reader = RecordReader(source: scratch.descriptor, maxRecord: maxRecord, verify: verify, startOffset: UInt64(from), chunk: chunk)
        do {
            try reader.forEach { view, offset in
                checkBytes(view, offset: offset, a, what)
                records.append(modelRecord(view, offset: offset))
            }
        } catch let f as RecordFault {
            fault = f
        } catch {
            other = error
        }
    }
    check("reader", other == nil, "\(what): unexpected error \(String(describing: other))")
    let expected = Model.committed(Model.strict(a, from: from, maxRecord: maxRecord, verify: verify))
    check("reader", records == expected.records, "\(what): records \(records), model says \(expected.records)")
    check("reader", fault == expected.fault,
          "\(what): fault \(fault.map(\.message) ?? "none"), model says \(expected.fault.map(\.message) ?? "none")")
    let bound = 4 * (a.count + chunk) + 4096
    check("alloc-reader", largest <= bound,
          "\(what): allocated \(largest) bytes at once for a \(a.count)-byte input (bound \(bound)); fault \(fault.map(\.message) ?? "none")")
}

func checkSequence(_ a: [UInt8], _ raw: UnsafeRawBufferPointer) {
    var records: [Model.Record] = []
    for view in RecordSequence(raw) {
        let offset = view.bytes.baseAddress! - raw.baseAddress!
        checkBytes(view, offset: UInt64(offset), a, "RecordSequence")
        records.append(modelRecord(view, offset: UInt64(offset)))
    }
    let expected = Model.strict(a, from: 0, maxRecord: Int.max, verify: false).records
    check("sequence", records == expected, "RecordSequence yields \(records), model says \(expected)")
}

func checkWalk(_ a: [UInt8], _ raw: UnsafeRawBufferPointer, from: Int, maxRecord: Int) {
    let what = "Recovery.walk(from \(from), maxRecord \(maxRecord))"
    var events: [Model.Event] = []
    Recovery.walk(raw, from: UInt64(from), maxRecord: maxRecord) { event in
        switch event {
        case .record(let view, let offset):
            checkBytes(view, offset: offset, a, what)
            events.append(.record(modelRecord(view, offset: offset)))
        case .damage(let fault, let end):
            events.append(.damage(fault, end: Int(end)))
        }
    }
    // Tiling: each event starts where the previous one ended, inside the input.
    var position = from
    for (n, event) in events.enumerated() {
        switch event {
        case .record(let r):
            check("walk-tiling", r.offset == position && r.end <= a.count, "\(what): \(r) after position \(position)")
            position = r.end
        case .damage(let f, let end):
            check("walk-tiling", Int(f.offset) == position && end > position && end <= a.count,
                  "\(what): damage \(f.offset)..<\(end) after position \(position)")
            if n + 1 < events.count, case .damage = events[n + 1] {
                check("walk-tiling", false, "\(what): two damaged ranges in a row at \(end)")
            }
            position = end
        }
    }
    check("walk-tiling", position == max(from, a.count),
          "\(what): events end at \(position) of \(a.count)")
    // The contract rule: nothing inside an intact header's declared extent.
    for event in events {
        guard case .damage(let f, _) = event else { continue }
        let p = Int(f.offset)
        guard case .intact(let end) = Model.extent(a, at: p, maxRecord: maxRecord) else { continue }
        for inner in events {
            if case .record(let r) = inner, r.offset > p, r.offset < end {
                check("resync-extent", false,
                      "\(what): \(r) lies inside the declared extent \(p)..<\(end) of the damaged record at \(p) (\(f.error.reason)), whose header is intact")
            }
        }
    }
    let expected = Model.grouped(Model.walk(a, from: from, maxRecord: maxRecord), size: a.count)
    if events != expected && events == Model.grouped(Model.walk(a, from: from, maxRecord: maxRecord, rule: .contradictingChain), size: a.count) {
        check("resync-skips-records", false,
              "\(what): after a header whose length a chain of records contradicts, the scan resumed at that chain, "
                  + "skipping valid records before it\n  got:   \(events)\n  model: \(expected)")
    } else {
        check("walk-model", events == expected, "\(what): events\n  got:   \(events)\n  model: \(expected)")
    }
}

/// RecordWalker in strict or verified mode, over the whole input
/// (`complete`) or a prefix of it as a streaming read sees it: the model's
/// records, then its first error as damage running to the end, or, for a
/// prefix, `.partial` with the bytes the cut record needs.
func checkWalker(_ a: [UInt8], _ raw: UnsafeRawBufferPointer, verify: Bool, maxRecord: Int, from: Int, base: UInt64, prefix: Int? = nil) {
    let count = prefix ?? a.count
    let what = "RecordWalker(\(verify ? "verified" : "strict"), maxRecord \(maxRecord), from \(from), baseOffset \(base), "
        + (prefix.map { "first \($0) of \(a.count) bytes, incomplete" } ?? "complete") + ")"
    var steps: [String] = []
    var walker = RecordWalker(UnsafeRawBufferPointer(rebasing: raw[0..<count]), mode: verify ? .verified : .strict,
                              maxRecord: maxRecord, from: from, baseOffset: base, complete: prefix == nil)
    while let step = walker.next() {
        switch step {
        case .record(let view, let offset):
            checkBytes(view, offset: UInt64(offset), a, what)
            steps.append(modelRecord(view, offset: UInt64(offset)).description)
        case .damage(let fault, let end):
            steps.append("damage \(fault.offset)..<\(end): \(fault.error.reason)")
        case .partial(let offset, let needed):
            steps.append("partial at \(offset), needs \(needed)")
        }
        if steps.count > count + 2 {
            check("walker", false, "\(what): \(steps.count) steps over \(count) bytes, and more")
            return
        }
    }
    // The model: a strict walk of the bytes there.
    var expected: [String] = []
    var p = from
    let cut = Array(a[0..<count])
    while p < count {
        if prefix != nil && count - p < Model.headerSize {
            expected.append("partial at \(p), needs \(Model.headerSize)")
            break
        }
        if prefix != nil, case .success(let h) = Model.header(cut, at: p, maxRecord: maxRecord), h.length > count - p {
            expected.append("partial at \(p), needs \(h.length)")
            break
        }
        switch Model.parse(cut, at: p, maxRecord: maxRecord, verify: verify) {
        case .record(let r):
            expected.append(r.description)
            p = r.end
            continue
        case .fault(let error, _):
            expected.append("damage \(base + UInt64(p))..<\(count): \(error.reason)")
        }
        break
    }
    check("walker", steps == expected, "\(what): steps\n  got:   \(steps)\n  model: \(expected)")
}

func checkRecordAt(_ a: [UInt8], maxRecord: Int) {
    // The offsets of the strict walk, every magic byte, and the last byte.
    var offsets = Model.strict(a, from: 0, maxRecord: maxRecord, verify: true).records.map(\.offset)
    var q = Model.nextMagicByte(a, from: 0, to: a.count)
    while q < a.count && offsets.count < 24 {
        offsets.append(q)
        q = Model.nextMagicByte(a, from: q + 1, to: a.count)
    }
    if !a.isEmpty { offsets.append(a.count - 1) }
    let buffer = ByteBuffer(capacity: 64)
    for offset in offsets {
        for known in [nil, UInt64(a.count - offset)] as [UInt64?] {
            let what = "record(at: \(offset), length: \(known.map(String.init) ?? "nil"))"
            var got: Result<Model.Record, RecordError>?
            var other: (any Error)?
            let largest = largestAllocation {
                do {
                    let view = try scratch.descriptor.record(
                        at: UInt64(offset), size: UInt64(a.count), length: known, maxRecord: maxRecord, verify: true, buffer: buffer)
                    check("record-at", Array(view.bytes) == Array(a[offset..<min(a.count, offset + view.length)]),
                          "\(what): the record's bytes are not the input's")
                    got = .success(modelRecord(view, offset: UInt64(offset)))
                } catch let fault as SegmentFault {
                    check("record-at", fault.fault.offset == UInt64(offset), "\(what): fault names offset \(fault.fault.offset)")
                    got = .failure(fault.fault.error)
                } catch {
                    other = error
                }
            }
            check("record-at", other == nil, "\(what): unexpected error \(String(describing: other))")
            switch (Model.parse(a, at: offset, maxRecord: maxRecord, verify: true), got) {
            case (.record(let r), .success(let g)): check("record-at", r == g, "\(what): \(g), model says \(r)")
            case (.fault(let e, _), .failure(let g)): check("record-at", e == g, "\(what): \(g.reason), model says \(e.reason)")
            case (let e, let g): check("record-at", false, "\(what): \(String(describing: g)), model says \(e)")
            }
            let bound = 2 * a.count + 4096
            check("alloc-at", largest <= bound, "\(what): allocated \(largest) bytes at once for a \(a.count)-byte input (bound \(bound))")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let a = Array(raw)
    scratch.fill(raw)
    let small = 100
    let firstEnd: Int? = {
        if case .record(let r) = Model.parse(a, at: 0, maxRecord: RecordLayout.defaultMaxRecord, verify: true) { return r.end }
        return nil
    }()

    checkHeaderPrefixes(a, maxRecord: RecordLayout.defaultMaxRecord)
    checkHeaderPrefixes(a, maxRecord: small)
    checkReader(a, chunk: 1, maxRecord: RecordLayout.defaultMaxRecord, verify: true, from: 0)
    checkReader(a, chunk: 37, maxRecord: small, verify: true, from: 0)
    checkReader(a, chunk: 64, maxRecord: RecordLayout.defaultMaxRecord, verify: false, from: 0)
    checkReader(a, chunk: 1 << 16, maxRecord: RecordLayout.defaultMaxRecord, verify: true, from: 0)
    if let firstEnd { checkReader(a, chunk: 29, maxRecord: RecordLayout.defaultMaxRecord, verify: true, from: firstEnd) }
    checkWalker(a, raw, verify: false, maxRecord: RecordLayout.defaultMaxRecord, from: 0, base: 0)
    checkWalker(a, raw, verify: true, maxRecord: small, from: firstEnd ?? 0, base: 1000)
    if size > 1 {
        checkWalker(a, raw, verify: true, maxRecord: RecordLayout.defaultMaxRecord, from: 0, base: 0, prefix: size / 2)
        checkWalker(a, raw, verify: false, maxRecord: small, from: 0, base: 0, prefix: size - 1)
    }
    checkSequence(a, raw)
    checkWalk(a, raw, from: 0, maxRecord: RecordLayout.defaultMaxRecord)
    checkWalk(a, raw, from: 0, maxRecord: small)
    if let firstEnd { checkWalk(a, raw, from: firstEnd, maxRecord: RecordLayout.defaultMaxRecord) }
    checkRecordAt(a, maxRecord: RecordLayout.defaultMaxRecord)
    return 0
}
