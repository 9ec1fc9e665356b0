import Glibc
import Testing
@testable import LogFormat
@testable import LogIO
@testable import LogJSON
@testable import LogStore

/// A record of one-byte key and value, flagged or not.
private func rec(_ key: String, _ value: String, continues: Bool = false, timestamp: UInt64 = 1) -> [UInt8] {
    Record.encode(type: .put, key: Array(key.utf8), value: Array(value.utf8), timestamp: timestamp, continues: continues)
}

@Suite("Batches")
struct BatchTests {
    @Test("JSON lines: continues is true or false, once; a commit line has only its type")
    func jsonFields() throws {
        let parser = RecordLineParser()
        func parse(_ line: String) throws(JSONLineError) -> RecordInput? {
            let bytes = Array(line.utf8)
            let result: Result<RecordInput?, JSONLineError> = bytes.withUnsafeBytes { raw in
                Result { () throws(JSONLineError) in try parser.parse(raw) }
            }
            return try result.get()
        }
        #expect(try parse(#"{"key":"a","value":"1","continues":true}"#)?.continues == true)
        #expect(try parse(#"{"key":"a","value":"1","continues":false}"#)?.continues == false)
        #expect(try parse(#"{"key":"a","value":"1"}"#)?.continues == false)
        #expect(try parse(#"{"type":"commit"}"#)?.isCommit == true)
        #expect(throws: JSONLineError(column: nil, reason: "\"continues\" must be true or false")) { try parse(#"{"key":"a","continues":1}"#) }
        #expect(throws: JSONLineError(column: nil, reason: "duplicate field \"continues\"")) { try parse(#"{"key":"a","continues":true,"continues":false}"#) }
        #expect(throws: JSONLineError(column: nil, reason: "a commit line has only \"type\"")) { try parse(#"{"type":"commit","key":"a"}"#) }
    }

    @Test("the streaming reader hands out a batch only with its last record, whatever the read size", arguments: [1, 7, 29, 30, 31, 59, 61, 1 << 20])
    func readerHoldsBatches(chunk: Int) throws {
        let data = rec("a", "1") + rec("b", "2", continues: true) + rec("c", "3", continues: true) + rec("d", "4") + rec("e", "5")
        let result = try readRecords(file: data, chunk: chunk)
        #expect(result.fault == nil)
        #expect(result.records.map { $0.0 } == [0, 30, 60, 90, 120])
    }

    @Test("an open batch at the end is uncommitted: none of its records is handed out", arguments: [1, 30, 1 << 20])
    func readerOpenBatch(chunk: Int) throws {
        let data = rec("a", "1") + rec("b", "2", continues: true) + rec("c", "3", continues: true)
        let result = try readRecords(file: data, chunk: chunk)
        #expect(result.records.map { $0.0 } == [0])
        #expect(result.fault == RecordFault(offset: 30, error: .uncommittedBatch(records: 2)))
    }

    @Test("a batch broken by damage is reported at its first record")
    func readerBrokenBatch() throws {
        var data = rec("a", "1") + rec("b", "2", continues: true) + rec("c", "3")
        data[60 + 29] ^= 1
        let result = try readRecords(file: data, chunk: 1 << 20)
        #expect(result.records.map { $0.0 } == [0])
        #expect(result.fault == RecordFault(offset: 30, error: .uncommittedBatch(records: 1)))
    }

    @Test("recovery: an open batch at the end is a torn tail from its first record; salvage leaves it out")
    func recoveryOpenBatch() {
        let data = rec("a", "1") + rec("b", "2", continues: true) + rec("c", "3", continues: true)
        let v = data.withUnsafeBytes { Recovery.verify($0, from: 0, maxRecord: 1 << 20) }
        #expect(v.isTornTail)
        #expect(v.validEnd == 30)
        #expect(v.failure == RecordFault(offset: 30, error: .uncommittedBatch(records: 2)))
        #expect(v.damaged == [DamagedRange(start: 30, end: 90)])
    }

    @Test("recovery: records after a broken batch are records after damage; the damaged range covers the batch")
    func recoveryBrokenBatch() {
        var data = rec("a", "1") + rec("b", "2", continues: true) + rec("c", "3") + rec("d", "4")
        data[60 + 29] ^= 1
        var records: [UInt64] = []
        data.withUnsafeBytes { bytes in
            Recovery.walk(bytes, from: 0, maxRecord: 1 << 20) { event in
                if case .record(_, let offset) = event { records.append(offset) }
            }
        }
        #expect(records == [0, 90])
        let v = data.withUnsafeBytes { Recovery.verify($0, from: 0, maxRecord: 1 << 20) }
        #expect(!v.isTornTail)
        #expect(v.recordsAfterDamage == 1)
        #expect(v.damaged == [DamagedRange(start: 30, end: 90)])
    }

    @Test("compaction: kept records of a batch keep the flag but the last, re-sealed when its batch end was dropped")
    func compactionKeepsBatches() throws {
        // Batch (a, b) then b overwritten: a must end its batch now.
        let data = rec("a", "1", continues: true) + rec("b", "2") + rec("c", "3", continues: true) + rec("d", "4") + rec("b", "5")
        let out = ByteBuffer()
        let report = try data.withUnsafeBytes { try Compaction.writeLive($0, path: "s", maxRecord: 1 << 20, to: out) }
        #expect(report.recordsWritten == 4)
        let result = try readRecords(file: Array(out.bytes), chunk: 1 << 20)
        #expect(result.fault == nil)
        let records = Array(RecordSequence(out.bytes))
        #expect(records.map { String(decoding: $0.key, as: UTF8.self) } == ["a", "c", "d", "b"])
        #expect(records.map(\.continues) == [false, true, false, false])
    }

    @Test("compaction refuses a segment that ends in an open batch")
    func compactionRefusesOpenBatch() {
        let data = rec("a", "1") + rec("b", "2", continues: true)
        #expect(throws: SegmentFault(path: "s", fault: RecordFault(offset: 30, error: .uncommittedBatch(records: 1)))) {
            try data.withUnsafeBytes { _ = try Compaction.writeLive($0, path: "s", maxRecord: 1 << 20, to: ByteBuffer()) }
        }
    }

    @Test("a failed write keeps whole batches only")
    func committedLength() {
        let data = rec("a", "1") + rec("b", "2", continues: true) + rec("c", "3") + rec("d", "4", continues: true)
        data.withUnsafeBytes { bytes in
            #expect(SegmentAppender.committedLength(bytes, within: 59) == 30)
            #expect(SegmentAppender.committedLength(bytes, within: 89) == 30)
            #expect(SegmentAppender.committedLength(bytes, within: 90) == 90)
            #expect(SegmentAppender.committedLength(bytes, within: 120) == 90)
        }
    }
}

@Suite("Batches in recovery of a prefix")
struct BatchPrefixTests {
    @Test("a batch whose last record lies past the size verified is uncommitted there (found by the fuzzer)")
    func batchEndingPastSize() throws {
        let data = Record.encode(type: .put, key: Array("a".utf8), value: Array("1".utf8), timestamp: 1, continues: true)
            + Record.encode(type: .put, key: Array("b".utf8), value: [UInt8](repeating: 7, count: 38), timestamp: 1)
        let file = try TempFile(data)
        let fd = try file.open(O_RDONLY)
        defer { fd.close() }
        let v = try Recovery.verify(fd, size: 63, from: 0, maxRecord: 1 << 20)
        #expect(v.validEnd == 0)
        #expect(v.validRecords == 0)
        #expect(v.failure == RecordFault(offset: 0, error: .uncommittedBatch(records: 1)))
        #expect(v.isTornTail)
    }
}
