// Fuzz target `recovery`: arbitrary bytes as a segment, classified the way
// logfix classifies it (Recovery.verify, both the streaming-then-mapped path
// logfix takes on a file and the mapped path), checked against an
// independent model of docs/format.md and of the resynchronising scan
// (RecordWalker.swift's contract), written below.
//
// Each input is verified whole, without its last byte, cut in half (a size
// taken before more bytes were appended: the bytes past it must not count),
// and from the end of its first record (logfix --from-index).
//
// Invariants (names for FUZZ_SKIP, see Fuzz/README.md):
//   classification  clean, torn tail (damage with no valid record after it)
//                   or damage followed by valid records, as the model says
//   recovered-size  the first failure (offset and reason), the number of
//                   valid records before it and the end of the last of them
//                   (where logfix truncates) are the model's
//   after-damage    the damaged ranges and the count of valid records after
//                   the first damage are the model's (resync points included)
//   resync-skips-records
//                   the one after-damage difference named apart: after a
//                   header whose length a chain of records contradicts, the
//                   scan resumed at that chain instead of byte by byte,
//                   skipping (and not counting) valid records before it
//   verify-error    Recovery.verify on a readable file never throws
//   alloc-verify    verifying never allocates more than 4 x (size + the
//                   4 MiB read chunk) + 4 KiB at once
//
// The mutator reseals CRCs of record-shaped byte ranges, as in record-walker.

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

struct Expected {
    var validRecords = 0
    var validEnd: Int
    var failure: RecordFault?
    var damaged: [DamagedRange] = []
    var recordsAfterDamage = 0

    init(_ a: [UInt8], from: Int, maxRecord: Int, rule: Model.Rule = .documented) {
        validEnd = from
        for event in Model.grouped(Model.walk(a, from: from, maxRecord: maxRecord, rule: rule), size: a.count) {
            switch event {
            case .record(let r):
                if failure == nil {
                    validRecords += 1
                    validEnd = r.end
                } else {
                    recordsAfterDamage += 1
                }
            case .damage(let fault, let end):
                if failure == nil { failure = fault }
                damaged.append(DamagedRange(start: fault.offset, end: UInt64(end)))
            }
        }
    }

    var kind: String { failure == nil ? "clean" : recordsAfterDamage == 0 ? "torn tail" : "damage followed by valid records" }
}

func kind(_ v: Verification) -> String { v.isClean ? "clean" : v.isTornTail ? "torn tail" : "damage followed by valid records" }

func describe(_ v: Verification) -> String {
    "from \(v.from), \(v.validRecords) valid records to \(v.validEnd), failure \(v.failure?.message ?? "none"), "
        + "damaged \(v.damaged.map { "\($0.start)..<\($0.end)" }), \(v.recordsAfterDamage) records after damage"
}

func describe(_ e: Expected) -> String {
    "\(e.validRecords) valid records to \(e.validEnd), failure \(e.failure?.message ?? "none"), "
        + "damaged \(e.damaged.map { "\($0.start)..<\($0.end)" }), \(e.recordsAfterDamage) records after damage"
}

func compare(_ v: Verification, _ e: Expected, from: Int, _ what: String, _ a: [UInt8], maxRecord: Int) {
    check("classification", kind(v) == e.kind && v.isClean == (e.failure == nil),
          "\(what): \(kind(v)), model says \(e.kind)\n  got:   \(describe(v))\n  model: \(describe(e))")
    check("recovered-size",
          v.from == UInt64(from) && v.validEnd == UInt64(e.validEnd) && v.validRecords == e.validRecords && v.failure == e.failure,
          "\(what): recovered size \(v.validEnd) after \(v.validRecords) records, model says \(e.validEnd) after \(e.validRecords)"
              + "\n  got:   \(describe(v))\n  model: \(describe(e))")
    if v.damaged == e.damaged && v.recordsAfterDamage == e.recordsAfterDamage { return }
    let implemented = Expected(a, from: from, maxRecord: maxRecord, rule: .contradictingChain)
    if v.damaged == implemented.damaged && v.recordsAfterDamage == implemented.recordsAfterDamage {
        check("resync-skips-records", false,
              "\(what): after a header whose length a chain of records contradicts, the scan resumed at that chain, "
                  + "skipping valid records before it\n  got:   \(describe(v))\n  model: \(describe(e))")
    } else {
        check("after-damage", false, "\(what): after the damage\n  got:   \(describe(v))\n  model: \(describe(e))")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let a = Array(raw)
    scratch.fill(raw)
    let maxRecord = RecordLayout.defaultMaxRecord
    var cases: [(size: Int, from: Int)] = [(size, 0)]
    if size > 0 { cases.append((size - 1, 0)) }
    if size > 1 { cases.append((size / 2, 0)) }
    if case .record(let r) = Model.parse(a, at: 0, maxRecord: maxRecord, verify: true) { cases.append((size, r.end)) }
    // The streaming path reads with a 4 MiB buffer, costly under ASan: it
    // runs on the whole input and on one of the other cases, in turn.
    let streamed = cases.count > 1 ? 1 + size % (cases.count - 1) : 0
    for (n, (cut, from)) in cases.enumerated() {
        let prefix = Array(a[0..<cut])
        let expected = Expected(prefix, from: from, maxRecord: maxRecord)
        let what = "\(cut) of \(size) bytes from \(from)"

        if n == 0 || n == streamed {
            var fromFile: Verification?
            var error: (any Error)?
            let largest = largestAllocation {
                do {
                    fromFile = try Recovery.verify(scratch.descriptor, size: UInt64(cut), from: UInt64(from), maxRecord: maxRecord)
                } catch let e {
                    error = e
                }
            }
            check("verify-error", error == nil, "\(what): Recovery.verify(file) threw \(String(describing: error))")
            if let fromFile { compare(fromFile, expected, from: from, "Recovery.verify(file, \(what))", prefix, maxRecord: maxRecord) }
            let bound = 4 * (cut + (4 << 20)) + 4096
            check("alloc-verify", largest <= bound, "Recovery.verify(file, \(what)) allocated \(largest) bytes at once (bound \(bound))")
        }

        let mapped = Recovery.verify(UnsafeRawBufferPointer(rebasing: raw[0..<cut]), from: UInt64(from), maxRecord: maxRecord)
        compare(mapped, expected, from: from, "Recovery.verify(mapped, \(what))", prefix, maxRecord: maxRecord)
    }
    return 0
}
