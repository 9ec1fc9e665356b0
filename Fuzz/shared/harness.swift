// The harness every fuzz target shares: findings reported on stderr and
// stopped (unless FUZZ_SKIP names the invariant), and a scratch file the
// readers read the input from. A target names this file in a `// Shared:`
// line, and Fuzz/run.sh compiles it in.

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

// MARK: - Harness

func say(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

let skipped: Set<String> = {
    guard let raw = getenv("FUZZ_SKIP") else { return [] }
    return Set(String(cString: raw).split(separator: ",").map { String($0) })
}()

/// Stops the run with a finding unless the invariant is listed in FUZZ_SKIP.
func check(_ name: String, _ condition: Bool, _ message: @autoclosure () -> String) {
    if condition || skipped.contains(name) { return }
    say("logkit-fuzz: invariant \(name) broken: \(message())\n")
    abort()
}

/// An unlinked temporary file the readers read the input from.
final class ScratchFile: @unchecked Sendable {
    let fd: Int32

    init() {
        var directory = "/tmp"
        if access("/dev/shm", W_OK) == 0 { directory = "/dev/shm" } else if let t = getenv("TMPDIR") { directory = String(cString: t) }
        var template = Array("\(directory)/logkit-fuzz-XXXXXX".utf8CString)
        fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "cannot create a scratch file in \(directory)")
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
    }

    func fill(_ bytes: UnsafeRawBufferPointer) {
        precondition(ftruncate(fd, 0) == 0)
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(done))
            precondition(n > 0)
            done += n
        }
        rewind(to: 0)
    }

    func rewind(to offset: Int) { precondition(lseek(fd, off_t(offset), SEEK_SET) == off_t(offset)) }

    var descriptor: FileDescriptor { FileDescriptor(raw: fd, path: "<fuzz input>") }
}

let scratch = ScratchFile()
