import Glibc
import Testing
@testable import LogFormat
@testable import LogIO
@testable import LogJSON

@Suite("Bindings and checked formatting")
struct BindingTests {
    @Test("sync_file_range, bound by name, starts writeback of a regular file and fails where the kernel says so")
    func syncFileRange() throws {
        var template = Array("/tmp/logkit-sfr-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        #expect(fd >= 0)
        defer { close(fd); unlink(template) }
        let file = FileDescriptor(raw: fd, path: "tmp")
        try file.writeAll(Array(repeating: 7, count: 8192))
        #expect(file.startWriteback(offset: 0, count: 8192))
        #expect(!FileDescriptor(raw: -1, path: "bad").startWriteback(offset: 0, count: 1))
        #expect(errno == EBADF)
        var pipeEnds: [Int32] = [0, 0]
        #expect(pipe(&pipeEnds) == 0)
        defer { close(pipeEnds[0]); close(pipeEnds[1]) }
        #expect(!FileDescriptor(raw: pipeEnds[1], path: "pipe").startWriteback(offset: 0, count: 1))
        #expect(errno == ESPIPE)
    }

    @Test("the worst case reserved for a JSON line covers keys and values that escape every byte")
    func worstCase() throws {
        let out = ByteBuffer()
        // Control bytes escape to six characters; invalid UTF-8 values go to base64.
        for (key, value) in [([UInt8](repeating: 1, count: 300), [UInt8](repeating: 2, count: 300)),
                             ([UInt8](repeating: 0x22, count: 1), [UInt8](repeating: 0xFF, count: 1000))] {
            let record = Record.encode(type: .put, key: key, value: value, timestamp: UInt64.max)
            try record.withUnsafeBytes { bytes in
                let view = try RecordView.parse(bytes, maxRecord: .max, verify: false)
                try RecordJSON.write(view, offset: UInt64.max, shape: .init(segment: String(repeating: "\u{1}", count: 50), includeValue: true, status: "deleted"), to: out)
                try IndexLine.write(key: view.key, location: IndexLocation(type: .delete, segment: .max, offset: .max, length: .max, timestamp: .max), last: false, to: out)
            }
        }
        #expect(out.count > 0)
    }
}
