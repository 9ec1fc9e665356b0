// Iterates over a buffer of records this process encoded or already verified:
// no checks beyond the structure, stopping at the first thing that is not a
// whole record.

public struct RecordSequence: Sequence, IteratorProtocol {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    public mutating func next() -> RecordView? {
        guard position < bytes.count,
              let record = try? RecordView.parse(UnsafeRawBufferPointer(rebasing: bytes[position...]), maxRecord: Int.max, verify: false)
        else { return nil }
        position += record.length
        return record
    }
}
