// What every tool shares as a program, so that all of them behave alike:
// `-h`/`--help` prints usage to stdout and exits 0, `--version` the version,
// `--man` the man page and `--completion bash|zsh` a completion script;
// an unknown option, a missing or malformed argument prints one line naming
// the problem plus a usage hint on stderr and exits 2; every other error is
// `TOOL: message` on stderr with the status `Failure.describe` gives it.

import LogFormat
import LogIO
import LogJSON
import LogStore

import Glibc

/// The version every tool prints with `--version`.
public enum LogKit {
    public static let version = "0.3.0"
}

public struct Tool: Sendable {
    public let spec: ToolSpec
    public var name: String { spec.name }
    /// stderr's last line, where messages and the progress meter meet.
    let statusLine = StatusLine { try? FileDescriptor.standardError.writeAll($0) }

    public init(_ spec: ToolSpec) {
        self.spec = spec
        // Past a file-size limit, write(2) should fail with EFBIG so the
        // tool can undo a partial record and say why, not die mid-record.
        signal(SIGXFSZ, SIG_IGN)
    }

    /// The one way a tool runs: parse the command line against the spec
    /// (answering --help and --version), run `body`, and turn whatever it
    /// throws into a message and an exit status (`Failure.describe`).
    public func main(_ body: (ParsedArguments) throws -> ExitCode) -> Never {
        let status: ExitCode
        do {
            let arguments = try ParsedArguments(Tool.commandLine(self), spec: spec)
            if arguments.has("--help") { print(spec.usage) }
            if arguments.has("--version") { print("\(name) (logkit) \(LogKit.version)\n") }
            if arguments.has("--man") { print(spec.manPage) }
            if arguments.has("--man-format") { print(ManPage.format) }
            if let shell = arguments.string("--completion") { print(try spec.completion(for: shell)) }
            status = try body(arguments)
            statusLine.clear()
        } catch let error as UsageError {
            usageError(error.message)
        } catch {
            fail(error)
        }
        exit(status.rawValue)
    }

    /// argv without argv[0], as exact bytes (argv need not be UTF-8).
    private static func commandLine(_ tool: Tool) -> [[UInt8]] {
        var raw: [[UInt8]] = []
        for k in 0..<Int(CommandLine.argc) {
            guard let arg = CommandLine.unsafeArgv[k] else { continue }
            raw.append(Array(UnsafeBufferPointer(start: UnsafeRawPointer(arg).assumingMemoryBound(to: UInt8.self), count: strlen(arg))))
        }
        // Every exec has at least argv[0]. None means the runtime could not
        // read the command line (no free file descriptor for /proc): acting
        // on an empty one would silently do the wrong thing.
        if raw.isEmpty { tool.fail("cannot read the command line (no free file descriptor?)", .usage) }
        return Array(raw.dropFirst())
    }

    /// Prints `NAME: message` on stderr and exits.
    public func fail(_ message: String, _ code: ExitCode) -> Never {
        warn(message)
        exit(code.rawValue)
    }

    /// Prints `NAME: message` on stderr and carries on.
    public func warn(_ message: String) {
        statusLine.message("\(name): \(message)\n")
    }

    /// A usage error: the message, a hint, exit 2.
    public func usageError(_ message: String) -> Never {
        statusLine.message("\(name): \(message)\nTry '\(name) --help' for usage.\n")
        exit(ExitCode.usage.rawValue)
    }

    /// Writes `text` to stdout and exits 0, or 2 if it could not be written.
    public func print(_ text: String) -> Never {
        do {
            try FileDescriptor.standardOutput.writeAll(text)
        } catch {
            fail(error.message, .usage)
        }
        exit(ExitCode.success.rawValue)
    }

    /// Stops before binary output reaches a terminal.
    public func refuseTerminal(_ output: FileDescriptor, hint: String) {
        if output.isTerminal {
            fail("refusing to write binary records to a terminal; \(hint)", .usage)
        }
    }

    /// Reports any error as `NAME: message` with its exit status.
    public func fail(_ error: any Error) -> Never {
        let (message, status) = Failure.describe(error)
        fail(message, status)
    }
}

extension Tool {
    /// A key as a message shows it: as itself, or JSON-quoted and escaped if
    /// it holds a control character, so a message is always one line.
    public static func displayKey(_ key: UnsafeRawBufferPointer) -> String {
        let text = String(decoding: key, as: UTF8.self)
        guard key.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        // JSON leaves DEL as it is; a message must not.
        var shown = ""
        for scalar in String(decoding: JSONText.quoted(text), as: UTF8.self).unicodeScalars {
            if scalar == "\u{7F}" { shown += "\\u007f" } else { shown.unicodeScalars.append(scalar) }
        }
        return shown
    }
}
