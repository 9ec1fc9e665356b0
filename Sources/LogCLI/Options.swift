// A tool's interface, declared once: its synopsis, description, options,
// exit statuses and examples. The same declaration parses the command line,
// prints `--help`, and writes the man page and the shell completions
// (`ToolSpec.usage`, `manPage`, `bashCompletion`, `zshCompletion`), so they
// cannot drift apart.
//
// Parsing follows the usual conventions: options until `--`, positionals
// anywhere, `--name=value` or `--name value`, and every tool answers
// `-h`/`--help` and `--version` without touching a file.

import LogFormat

/// What an option's value (or a positional) names, for completion.
public enum Completion: Sendable, Equatable {
    case none
    case file
    case directory
    case words([String])
}

public struct Option: Sendable {
    /// Every spelling, the long one last: `["-a", "--append"]`.
    public let names: [String]
    /// The value's placeholder (`SEG`), or nil for a flag.
    public let value: String?
    public let help: String
    public let completion: Completion
    /// Parsed like any other, but left out of --help, the man page and the
    /// completions (`--man-format`, which `make install` uses).
    public let hidden: Bool

    public init(_ names: [String], _ value: String? = nil, _ help: String, completion: Completion = .none, hidden: Bool = false) {
        self.names = names
        self.value = value
        self.help = help
        self.completion = completion
        self.hidden = hidden
    }

    /// The name a tool looks the option up by: its long spelling.
    public var key: String { names[names.count - 1] }

    /// Refuse records longer than BYTES: every tool that reads records has it.
    public static let maxRecord = Option(
        ["--max-record"], "BYTES", "refuse records longer than BYTES (default 64M; K, M, G)")
    static let help = Option(["-h", "--help"], nil, "show this help and exit")
    static let version = Option(["--version"], nil, "print the version and exit")
    static let man = Option(["--man"], nil, "print the man page (roff) and exit")
    static let completion = Option(["--completion"], "SHELL", "print a bash or zsh completion script and exit",
                                   completion: .words(["bash", "zsh"]))
    /// The logkit-format(5) page, generated from the record layout.
    static let manFormat = Option(["--man-format"], nil, "print the logkit-format(5) man page (roff) and exit", hidden: true)
}

public struct ToolSpec: Sendable {
    public let name: String
    /// Usage lines after `usage: NAME `.
    public let synopsis: [String]
    /// Paragraphs, preformatted at 80 columns.
    public let about: String
    public let options: [Option]
    /// What positionals name, for completion.
    public let operands: Completion
    public let exitStatus: String
    public let examples: [String]

    public init(
        name: String, synopsis: [String], about: String, options: [Option], operands: Completion = .none,
        exitStatus: String, examples: [String]
    ) {
        self.name = name
        self.synopsis = synopsis
        self.about = about
        self.options = options + [Option.help, Option.version, Option.man, Option.completion, Option.manFormat]
        self.operands = operands
        self.exitStatus = exitStatus
        self.examples = examples
    }

    func option(named name: String) -> Option? {
        options.first { $0.names.contains(name) }
    }

    /// The options --help, the man page and the completions show.
    public var visibleOptions: [Option] { options.filter { !$0.hidden } }

    /// The `--help` text.
    public var usage: String {
        var text = "usage: \(name) \(synopsis[0])\n"
        for line in synopsis.dropFirst() { text += "       \(name) " + line + "\n" }
        text += "\n" + about + "\n\noptions:\n"
        for option in visibleOptions {
            let label = option.names.joined(separator: ", ") + (option.value.map { " " + $0 } ?? "")
            text += TextLayout.hanging(label: "  " + label, column: 22, text: option.help, width: 80)
        }
        text += "\n" + TextLayout.wrap("exit status: " + exitStatus, indent: "", width: 80)
        text += "\nexamples:\n"
        for example in examples { text += "  " + example + "\n" }
        return text
    }
}

/// Word wrapping for usage text and man pages.
enum TextLayout {
    /// `label` padded to `column`, then `text` wrapped to `width`, continued
    /// at `column`; a label too long for its column puts the text below.
    static func hanging(label: String, column: Int, text: String, width: Int) -> String {
        let indent = String(repeating: " ", count: column)
        var lines = wrapLines(text, width: width - column)
        var out = ""
        if label.count + 2 > column {
            out += label + "\n"
        } else {
            out += label + String(repeating: " ", count: column - label.count) + (lines.isEmpty ? "" : lines.removeFirst()) + "\n"
        }
        for line in lines { out += indent + line + "\n" }
        return out
    }

    static func wrap(_ text: String, indent: String, width: Int) -> String {
        wrapLines(text, width: width - indent.count).map { indent + $0 + "\n" }.joined()
    }

    static func wrapLines(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if line.isEmpty {
                line = String(word)
            } else if line.count + 1 + word.count <= width {
                line += " " + word
            } else {
                lines.append(line)
                line = String(word)
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }
}

/// A command line that does not fit the tool's declaration: one line naming
/// the problem, a hint to `--help`, exit 2.
public struct UsageError: Error, Sendable, Equatable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }
}

/// The command line, parsed against a ToolSpec.
public struct ParsedArguments {
    /// Each option given, by its key, with its values in order (a flag has
    /// one empty value per occurrence).
    private var values: [String: [[UInt8]]] = [:]
    /// Positionals as their exact bytes (argv need not be UTF-8).
    public private(set) var positionals: [[UInt8]] = []

    /// Parses `arguments` (without argv[0]).
    public init(_ arguments: [[UInt8]], spec: ToolSpec) throws(UsageError) {
        var index = 0
        var optionsEnded = false
        while index < arguments.count {
            let bytes = arguments[index]
            index += 1
            let text = String(decoding: bytes, as: UTF8.self)
            if optionsEnded || bytes.count < 2 || bytes[0] != UInt8(ascii: "-") {
                positionals.append(bytes)
                continue
            }
            if text == "--" {
                optionsEnded = true
                continue
            }
            var name = text
            var inline: [UInt8]?
            if text.hasPrefix("--"), let eq = bytes.firstIndex(of: UInt8(ascii: "=")) {
                name = String(decoding: bytes[..<eq], as: UTF8.self)
                inline = Array(bytes[(eq + 1)...])
            }
            guard let option = spec.option(named: name) else { throw UsageError("unknown option \(name)") }
            if option.value == nil {
                if inline != nil { throw UsageError("option \(name) takes no value") }
                values[option.key, default: []].append([])
            } else if let inline {
                values[option.key, default: []].append(inline)
            } else {
                guard index < arguments.count else { throw UsageError("option \(name) needs a value") }
                values[option.key, default: []].append(arguments[index])
                index += 1
            }
        }
    }

    public func has(_ key: String) -> Bool { values[key] != nil }

    /// The last value given for an option, as bytes.
    public func bytes(_ key: String) -> [UInt8]? { values[key]?.last }

    public func string(_ key: String) -> String? { bytes(key).map { String(decoding: $0, as: UTF8.self) } }

    /// A non-empty path.
    public func path(_ key: String) throws(UsageError) -> String? {
        guard let path = string(key) else { return nil }
        if path.isEmpty { throw UsageError("option \(key) needs a path") }
        return path
    }

    public func unsigned(_ key: String) throws(UsageError) -> UInt64? {
        guard let text = string(key) else { return nil }
        guard let number = UInt64(text) else { throw UsageError("option \(key): '\(text)' is not a non-negative integer") }
        return number
    }

    /// A byte count: digits with an optional K, M or G suffix (powers of 1024).
    public func byteCount(_ key: String, range: ClosedRange<UInt64>) throws(UsageError) -> Int? {
        guard let text = string(key) else { return nil }
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
            throw UsageError("option \(key): '\(text)' is not a byte count from \(range.lowerBound) to \(range.upperBound)")
        }
        return Int(bytes)
    }

    /// `--max-record`, or the default.
    public func maxRecord() throws(UsageError) -> Int {
        try byteCount(Option.maxRecord.key, range: UInt64(RecordLayout.headerSize + 1)...UInt64(UInt32.max))
            ?? RecordLayout.defaultMaxRecord
    }

    /// The one segment a tool takes.
    public func onlySegment() throws(UsageError) -> String {
        let segments = positionalStrings
        guard segments.count == 1, let path = segments.first else {
            throw UsageError(segments.isEmpty ? "no segment given" : "exactly one segment is taken, not \(segments.count)")
        }
        return path
    }

    /// Positionals as strings (paths).
    public var positionalStrings: [String] { positionals.map { String(decoding: $0, as: UTF8.self) } }
}
