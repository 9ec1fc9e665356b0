import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI

let tool = Tool(ToolSpec(
    name: "logdec",
    synopsis: ["[options] < records.seg > records.jsonl", "--format"],
    about: """
        Decode a stream of binary logkit records from stdin into JSON lines, one per
        record, verifying each record's structure and checksum:

          {"offset":0,"length":35,"type":"put","key":"name","value":"ish",
           "timestamp":1700000000000,"checksum":"0xcff8f08d"}

        A value that is not UTF-8 is printed as "value_b64" (base64); a delete has no
        value. At the first damaged record the records before it have been printed,
        then "logdec: offset N: REASON" goes to stderr and the exit status is 1.
        """,
    options: [
        Option(["--no-verify"], nil,
               "skip checksum and key UTF-8 checks (structure is still checked; a key that is not UTF-8 prints with U+FFFD)"),
        Option.maxRecord,
        Option(["--format"], nil, "print the record layout table and exit"),
    ],
    exitStatus: "0 every record valid; 1 damage found; 2 usage or I/O error.",
    examples: [
        "logdec < data/segment-0001.dat | jq -r .key",
        "logenc user-1 alice | logdec",
        "logdec --format",
    ]))

tool.main { arguments in
    if let text = arguments.positionalStrings.first {
        throw UsageError("unexpected argument '\(text)' (logdec reads stdin; logscan reads files)")
    }
    let maxRecord = try arguments.maxRecord()
    if arguments.has("--format") { tool.print(RecordLayout.table()) }

    let output = OutputBuffer(sink: .standardOutput)
    let reader = RecordReader(source: .standardInput, maxRecord: maxRecord, verify: !arguments.has("--no-verify"))
    let shape = RecordJSON.Shape(segment: nil, includeValue: true)
    do {
        try reader.forEach { record, offset in
            try RecordJSON.write(record, offset: offset, shape: shape, to: output)
        }
    } catch let fault as RecordFault {
        // The records before the damage reach stdout before the message.
        try output.flush()
        throw fault
    }
    try output.flush()
    return .success
}
