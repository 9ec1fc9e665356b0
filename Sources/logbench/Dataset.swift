// The benchmark's data, generated from a fixed seed so every run measures the
// same bytes: N records with keys user-0000000..., values of 50 to 150
// printable ASCII bytes, timestamps counting up. Written once per size as
// JSON lines (logkit's input and the naive log) and as TSV (the peers'
// import format), plus the derived inputs the workloads need.

import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
import Glibc

/// SplitMix64: tiny, fast, and the same sequence everywhere.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }
}

struct Dataset {
    let size: Int
    let directory: String

    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-_".utf8)
    static let firstTimestamp: UInt64 = 1_700_000_000_000

    var records: String { "\(directory)/records.jsonl" }
    var tsv: String { "\(directory)/records.tsv" }
    /// New values for every key: the repeated-puts workload.
    var overwrites: String { "\(directory)/overwrites.jsonl" }
    var overwritesTSV: String { "\(directory)/overwrites.tsv" }
    /// Deletes of every tenth key.
    var deletes: String { "\(directory)/deletes.jsonl" }
    var deletesTSV: String { "\(directory)/deletes.tsv" }
    /// Half the records overwrite or delete keys of the other half.
    var churn: String { "\(directory)/churn.jsonl" }
    var churnTSV: String { "\(directory)/churn.tsv" }
    /// Keys to look up in a batch, in random order.
    var lookupKeys: String { "\(directory)/keys.txt" }
    var lookupCount: Int { min(size, 100_000) }

    static func key(_ n: Int) -> String {
        let digits = String(n)
        return "user-" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits
    }

    /// The key a single lookup asks for: one in the middle.
    var probeKey: String { Dataset.key(size / 2) }

    func generate() throws {
        try FileSystem.makeDirectories(directory)
        var random = SplitMix64(state: 42)
        var pool = [UInt8](repeating: 0, count: 1 << 16)
        for k in pool.indices { pool[k] = Dataset.alphabet[random.next(below: Dataset.alphabet.count)] }

        func value() -> ArraySlice<UInt8> {
            let length = 50 + random.next(below: 101)
            let start = random.next(below: pool.count - length)
            return pool[start..<(start + length)]
        }
        try write(records, tsv) { out, table in
            for n in 0..<size { put(out, table, Dataset.key(n), value(), Dataset.firstTimestamp + UInt64(n)) }
        }
        try write(overwrites, overwritesTSV) { out, table in
            for n in 0..<size { put(out, table, Dataset.key(n), value(), Dataset.firstTimestamp + UInt64(size + n)) }
        }
        try write(deletes, deletesTSV) { out, table in
            for n in stride(from: 0, to: size, by: 10) {
                delete(out, table, Dataset.key(n), Dataset.firstTimestamp + UInt64(2 * size + n))
            }
        }
        try write(churn, churnTSV) { out, table in
            let half = size / 2
            for n in 0..<size {
                let timestamp = Dataset.firstTimestamp + UInt64(n)
                if n < half {
                    put(out, table, Dataset.key(n), value(), timestamp)
                } else if n % 2 == 0 {
                    put(out, table, Dataset.key(random.next(below: max(half, 1))), value(), timestamp)
                } else {
                    delete(out, table, Dataset.key(random.next(below: max(half, 1))), timestamp)
                }
            }
        }
        var keys = ""
        for _ in 0..<lookupCount { keys += Dataset.key(random.next(below: size)) + "\n" }
        try FileSystem.writeAtomically(lookupKeys) { try $0.writeAll(keys) }
    }

    private func put(_ out: OutputBuffer, _ table: OutputBuffer, _ key: String, _ value: ArraySlice<UInt8>, _ timestamp: UInt64) {
        let text = String(decoding: value, as: UTF8.self)
        try? out.append("{\"key\":\"\(key)\",\"value\":\"\(text)\",\"timestamp\":\(timestamp)}\n")
        try? table.append("\(key)\t\(text)\t\(timestamp)\n")
    }

    private func delete(_ out: OutputBuffer, _ table: OutputBuffer, _ key: String, _ timestamp: UInt64) {
        try? out.append("{\"key\":\"\(key)\",\"type\":\"delete\",\"timestamp\":\(timestamp)}\n")
        try? table.append("\(key)\n")
    }

    /// Writes a JSON-lines file and its TSV twin side by side.
    private func write(_ jsonl: String, _ tsv: String, _ body: (OutputBuffer, OutputBuffer) -> Void) throws {
        let jsonFile = try FileDescriptor.open(jsonl, O_WRONLY | O_CREAT | O_TRUNC)
        defer { jsonFile.close() }
        let tsvFile = try FileDescriptor.open(tsv, O_WRONLY | O_CREAT | O_TRUNC)
        defer { tsvFile.close() }
        let out = OutputBuffer(sink: jsonFile)
        let table = OutputBuffer(sink: tsvFile)
        body(out, table)
        try out.flush()
        try table.flush()
    }
}
