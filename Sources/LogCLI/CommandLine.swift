// Option parsing and error reporting shared by every tool, so that all of
// them behave alike: `-h`/`--help` prints usage to stdout and exits 0; an
// unknown option, a missing or malformed argument prints one line naming the
// problem plus a usage hint on stderr and exits 2; errors are
// `TOOL: message` on stderr.
//
// Exit codes: 0 success, 1 the data said no, 2 usage or environment error.

import LogFormat
import LogIO
import LogJSON
import LogStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct Tool {
    public let name: String
    public let usage: String

    public init(name: String, usage: String) {
        self.name = name
        self.usage = usage
        // Past a file-size limit, write(2) should fail with EFBIG so the
        // tool can undo a partial record and say why, not die mid-record.
        signal(SIGXFSZ, SIG_IGN)
    }

    /// Prints `NAME: message` on stderr and exits.
    public func fail(_ message: String, _ code: ExitCode) -> Never {
        warn(message)
        exit(code.rawValue)
    }

    /// Prints `NAME: message` on stderr and carries on.
    public func warn(_ message: String) {
        try? FileDescriptor.standardError.writeAll("\(name): \(message)\n")
    }

    /// A usage error: the message, a hint, exit 2.
    public func usageError(_ message: String) -> Never {
        try? FileDescriptor.standardError.writeAll("\(name): \(message)\nTry '\(name) --help' for usage.\n")
        exit(ExitCode.usage.rawValue)
    }

    public func printHelp() -> Never {
        print(usage)
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
}

/// One command-line argument, as the tool sees it.
public enum Argument: Equatable {
    /// An option name, `-x` or `--long`; a `--long=value` arrives as `--long`
    /// with its value waiting for `Arguments.value(for:)`.
    case option(String)
    /// A positional argument, with its exact bytes (argv need not be UTF-8).
    case positional(String, [UInt8])
}

/// Walks argv: options until `--`, positionals anywhere.
public struct Arguments {
    private let tool: Tool
    private var raw: [[UInt8]]
    private var index = 1
    private var inlineValue: String?
    private var lastOption = ""
    private var optionsEnded = false

    public init(tool: Tool) {
        self.tool = tool
        var raw: [[UInt8]] = []
        for k in 0..<Int(CommandLine.argc) {
            guard let arg = CommandLine.unsafeArgv[k] else { continue }
            raw.append(Array(UnsafeBufferPointer(start: UnsafeRawPointer(arg).assumingMemoryBound(to: UInt8.self), count: strlen(arg))))
        }
        self.raw = raw
        // Every exec has at least argv[0]. None means the runtime could not
        // read the command line (no free file descriptor for /proc): acting
        // on an empty one would silently do the wrong thing.
        if raw.isEmpty { tool.fail("cannot read the command line (no free file descriptor?)", .usage) }
    }

    public mutating func next() -> Argument? {
        if inlineValue != nil { tool.usageError("option \(lastOption) takes no value") }
        guard index < raw.count else { return nil }
        let bytes = raw[index]
        index += 1
        let text = String(decoding: bytes, as: UTF8.self)
        if optionsEnded || bytes.count < 2 || bytes[0] != UInt8(ascii: "-") {
            return .positional(text, bytes)
        }
        if text == "--" {
            optionsEnded = true
            return next()
        }
        if text.hasPrefix("--"), let eq = text.firstIndex(of: "=") {
            lastOption = String(text[..<eq])
            inlineValue = String(text[text.index(after: eq)...])
            return .option(lastOption)
        }
        lastOption = text
        return .option(text)
    }

    /// The value of the option just returned: `--opt=value` or the next argument.
    public mutating func value(for option: String) -> String {
        if let value = inlineValue {
            inlineValue = nil
            return value
        }
        guard index < raw.count else { tool.usageError("option \(option) needs a value") }
        index += 1
        return String(decoding: raw[index - 1], as: UTF8.self)
    }

    /// The option's value as the exact bytes given (argv need not be UTF-8).
    public mutating func rawValue(for option: String) -> [UInt8] {
        if let value = inlineValue {
            inlineValue = nil
            return Array(value.utf8)
        }
        guard index < raw.count else { tool.usageError("option \(option) needs a value") }
        index += 1
        return raw[index - 1]
    }

    public mutating func unsignedValue(for option: String) -> UInt64 {
        let text = value(for: option)
        guard let number = UInt64(text) else { tool.usageError("option \(option): '\(text)' is not a non-negative integer") }
        return number
    }

    /// A byte count: digits with an optional K, M or G suffix (powers of 1024).
    public mutating func byteCount(for option: String, range: ClosedRange<UInt64>) -> Int {
        let text = value(for: option)
        var digits = Substring(text)
        var scale: UInt64 = 1
        switch text.last {
        case "K", "k": scale = 1 << 10
        case "M", "m": scale = 1 << 20
        case "G", "g": scale = 1 << 30
        default: break
        }
        if scale > 1 { digits = digits.dropLast() }
        guard let count = UInt64(digits), case let (bytes, overflow) = count.multipliedReportingOverflow(by: scale),
              !overflow, range.contains(bytes)
        else {
            tool.usageError("option \(option): '\(text)' is not a byte count from \(range.lowerBound) to \(range.upperBound)")
        }
        return Int(bytes)
    }

    /// For an option that takes no value: refuses `--option=value`.
    public mutating func flag() {
        if inlineValue != nil { tool.usageError("option \(lastOption) takes no value") }
    }

    /// `-h`/`--help`: the usage text, unless it was given a value.
    public mutating func help() -> Never {
        flag()
        tool.printHelp()
    }

    public func unknown(_ option: String) -> Never {
        tool.usageError("unknown option \(option)")
    }
}

extension Tool {
    /// A key as a message shows it: as itself, or JSON-quoted and escaped if
    /// it holds a control character, so a message is always one line.
    public static func displayKey(_ key: UnsafeRawBufferPointer) -> String {
        let text = String(decoding: key, as: UTF8.self)
        guard key.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        return String(decoding: JSONText.quoted(text), as: UTF8.self)
    }

    /// The `--max-record` option, shared by every tool that reads records.
    public static let maxRecordRange: ClosedRange<UInt64> = UInt64(RecordLayout.headerSize + 1)...UInt64(UInt32.max)
}

extension Tool {
    /// Reports any error as `NAME: message` with its exit status.
    public func fail(_ error: any Error) -> Never {
        let (message, status) = Failure.describe(error)
        fail(message, status)
    }
}
