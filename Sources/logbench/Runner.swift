// Running one command as a child process and measuring it: wall time on the
// monotonic clock, and the peak resident set size from wait4(2)'s rusage.
// Commands run in the driver's working directory (its work area).
// A command is an argv (run directly) or a shell line (`/bin/sh -c`, for
// pipelines and redirections); a shell line's rusage covers the children the
// shell waited for, so its peak RSS is that of the largest process in it.

import Glibc
import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI

struct RunResult {
    var status: Int32
    var microseconds: UInt64
    var maxRSSKiB: Int
    /// stdout, when it was captured.
    var output: String
}

struct RunFailure: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let stderr: String
    var description: String { "command failed (exit \(status)): \(command)\n\(stderr)" }
}

enum Runner {
    /// Runs `/bin/sh -c line`. With `capture`, stdout is returned; otherwise
    /// it goes to /dev/null. stderr is kept for errors.
    static func shell(_ line: String, capture: Bool = false, check: Bool = true) throws -> RunResult {
        try run(["/bin/sh", "-c", line], capture: capture, check: check, label: line)
    }

    /// Runs an argv directly (argv[0] is a path), with no shell in between.
    static func run(_ argv: [String], capture: Bool = false, check: Bool = true, label: String? = nil) throws -> RunResult {
        let outPath = ".run-stdout"
        let errPath = ".run-stderr"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, capture ? outPath : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var pid: pid_t = 0
        let started = monotonicMicroseconds()
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArgs, environ)
        guard spawned == 0 else {
            throw SystemError(errno: spawned, operation: "posix_spawn", path: argv[0])
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw SystemError(errno: errno, operation: "wait4", path: argv[0]) }
        }
        let elapsed = monotonicMicroseconds() - started
        let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let output = capture ? (try? readText(outPath)) ?? "" : ""
        if check && exitStatus != 0 {
            throw RunFailure(command: label ?? argv.joined(separator: " "), status: exitStatus, stderr: (try? readText(errPath)) ?? "")
        }
        return RunResult(status: exitStatus, microseconds: elapsed, maxRSSKiB: Int(usage.ru_maxrss), output: output)
    }

    /// A whole file as text; reads to the end, since /proc files report no size.
    static func readText(_ path: String) throws -> String {
        let file = try FileDescriptor.open(path, O_RDONLY)
        defer { file.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try file.read(into: $0) }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The path of `name` on PATH, if it is installed.
    static func which(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    static func installed(_ name: String) -> Bool { which(name) != nil }
}
