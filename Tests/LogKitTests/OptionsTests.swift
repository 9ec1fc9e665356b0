import Testing
@testable import LogCLI

@Suite("Options declared once")
struct OptionsTests {
    static let spec = ToolSpec(
        name: "demo", synopsis: ["[options] FILE...", "--flag FILE"], about: "About the tool.",
        options: [
            Option(["-o", "--output"], "PATH", "where the output goes", completion: .file),
            Option(["--flag"], nil, "a flag with a help text long enough to wrap past the eightieth column of a terminal"),
            Option.maxRecord,
        ],
        exitStatus: "0 done; 2 usage.", examples: ["demo -o out in"])

    func parse(_ words: [String]) throws(UsageError) -> ParsedArguments {
        try ParsedArguments(words.map { Array($0.utf8) }, spec: OptionsTests.spec)
    }

    @Test("short and long spellings, --name=value, positionals anywhere, -- ends options")
    func spellings() throws {
        let a = try parse(["in1", "-o", "x", "--flag", "in2", "--", "--output=y", "-o"])
        #expect(a.string("--output") == "x")
        #expect(a.has("--flag"))
        #expect(a.positionalStrings == ["in1", "in2", "--output=y", "-o"])
        let b = try parse(["--output=a=b", "-o", "c"])
        #expect(b.string("--output") == "c", "the last value wins")
        #expect(try parse(["--output=a=b"]).string("--output") == "a=b")
        #expect(try parse(["-"]).positionalStrings == ["-"], "a lone dash is an operand")
    }

    @Test("usage errors name the problem", arguments: [
        (["--nope"], "unknown option --nope"),
        (["-o"], "option -o needs a value"),
        (["--flag=1"], "option --flag takes no value"),
    ])
    func errors(words: [String], message: String) {
        #expect(throws: UsageError(message)) { try parse(words) }
    }

    @Test("typed values: paths, integers, byte counts and the --max-record range")
    func values() throws {
        #expect(throws: UsageError("option --output needs a path")) { try parse(["-o", ""]).path("--output") }
        #expect(try parse(["--max-record", "1K"]).maxRecord() == 1024)
        #expect(try parse([]).maxRecord() == 64 << 20)
        #expect(throws: UsageError("option --max-record: '28' is not a byte count from 29 to 4294967295")) {
            try parse(["--max-record", "28"]).maxRecord()
        }
        #expect(throws: UsageError("option --max-record: '5G' is not a byte count from 29 to 4294967295")) {
            try parse(["--max-record=5G"]).maxRecord()
        }
        #expect(throws: UsageError("option --output: 'x' is not a non-negative integer")) { try parse(["-o", "x"]).unsigned("--output") }
    }

    @Test("--help text comes from the declaration: synopsis, options with help and version, wrapped at 80 columns")
    func usage() {
        let text = OptionsTests.spec.usage
        #expect(text.hasPrefix("usage: demo [options] FILE...\n       demo --flag FILE\n\nAbout the tool.\n\noptions:\n"))
        #expect(text.contains("  -o, --output PATH   where the output goes\n"))
        #expect(text.contains("  --flag              a flag with a help text long enough to wrap past the\n                      eightieth column of a terminal\n"))
        #expect(text.contains("  -h, --help          show this help and exit\n  --version           print the version and exit\n"))
        #expect(text.hasSuffix("\nexamples:\n  demo -o out in\n"))
        #expect(text.split(separator: "\n").allSatisfy { $0.count <= 80 })
    }
}
