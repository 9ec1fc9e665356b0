// The workloads: each is one thing a user does, measured with logkit and with
// the peers a user would reach for instead, on the same data in the same run.
// A command's `prepare` runs before every timed run, untimed (fresh copies of
// the files a run changes), so every run starts from the same state.

/// One command to time.
struct Command {
    /// Who runs it: "logkit", "sqlite3", "tkrzw", "lmdb", "naive log (grep)", ...
    let tool: String
    /// A shell line; or, with `argv`, the same command run without a shell
    /// (per-process lookups, where a shell would double the cost measured).
    let line: String
    var argv: [String]? = nil
    var prepare: String? = nil
    /// The command times itself and prints the microseconds as its last line
    /// of output: a floor measured inside a process whose start would
    /// otherwise dominate (Python).
    var selfTimed = false
}

struct Workload {
    let name: String
    let variant: String
    /// Records (or operations) one run handles, for throughput.
    let operations: Int
    let unit: String
    let logkit: Command
    var peers: [Command] = []
    /// Peers that could not run, and why.
    var skipped: [(tool: String, reason: String)] = []
    /// More runs for very short commands, so their median is stable.
    var minimumRuns = 0
}

/// Which peers are installed.
struct Peers {
    let sqlite = Runner.installed("sqlite3")
    let tkrzw = Runner.installed("tkrzw_dbm_util")
    let jq = Runner.installed("jq")
    let lmdb = Runner.installed("mdb_load") && Runner.installed("mdb_dump")

    var missing: [(tool: String, reason: String)] {
        var list: [(String, String)] = []
        if !sqlite { list.append(("sqlite3", "not installed (apt-get install sqlite3)")) }
        if !tkrzw { list.append(("tkrzw", "not installed (apt-get install tkrzw-utils)")) }
        if !jq { list.append(("naive log (jq)", "not installed (apt-get install jq)")) }
        if !lmdb { list.append(("lmdb", "not installed (apt-get install lmdb-utils)")) }
        return list
    }
}

func quoted(_ text: String) -> String {
    "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
}

struct Plan {
    let data: Dataset
    let bin: String
    let peers: Peers
    /// Whether to run the workloads that do not depend on the data size.
    let includeFixedSize: Bool

    private func tool(_ name: String) -> String { quoted("\(bin)/\(name)") }

    private var sqliteSchema: String { "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT, timestamp INTEGER);" }

    /// Builds, once per size, the stores the workloads read or copy.
    var setup: [String] {
        var steps = [
            "\(tool("logenc")) < records.jsonl > base.seg",
            "\(tool("logenc")) < churn.jsonl > churn.seg",
            "\(tool("logscan")) --no-values base.seg | \(tool("logidx")) -o base.idx",
            "cp base.seg r.seg && \(tool("logscan")) --no-values r.seg | \(tool("logidx")) -o r.idx",
            "head -n 8 overwrites.jsonl > tail.jsonl",
            "cp records.jsonl naive.jsonl",
        ]
        if peers.sqlite {
            steps.append("rm -f base.db heap.db && sqlite3 base.db \(quoted(sqliteSchema)) '.mode tabs' '.import records.tsv kv'")
            steps.append("sqlite3 heap.db 'CREATE TABLE kv(key TEXT, value TEXT, timestamp INTEGER);' '.mode tabs' '.import records.tsv kv'")
        }
        if peers.tkrzw {
            steps.append("rm -f base.tkh churn.tkh && tkrzw_dbm_util create --dbm hash --append --buckets \(max(data.size * 2, 1024)) base.tkh && tkrzw_dbm_util import --dbm hash --tsv base.tkh records.tsv")
            steps.append("awk -F'\\t' 'NF == 3' churn.tsv > churn-puts.tsv && tkrzw_dbm_util create --dbm hash --append --buckets \(max(data.size * 2, 1024)) churn.tkh && tkrzw_dbm_util import --dbm hash --tsv churn.tkh churn-puts.tsv")
        }
        if peers.lmdb {
            steps.append("rm -rf base.mdb && mkdir base.mdb && { printf 'VERSION=3\\nformat=print\\ntype=btree\\nmapsize=\(max(data.size * 1024, 1 << 24))\\nHEADER=END\\n'; awk -F'\\t' '{print \" \" $1; print \" \" $2}' records.tsv; echo DATA=END; } | mdb_load -n base.mdb/db")
        }
        return steps
    }

    var workloads: [Workload] {
        let n = data.size
        let fresh = "rm -f w.seg w.seg.lock w.seg.compacting"
        var list: [Workload] = []

        list.append(Workload(name: "encode", variant: "JSON lines to records (logenc)", operations: n, unit: "records/s",
                             logkit: Command(tool: "logkit", line: "\(tool("logenc")) < records.jsonl > w.out")))
        list.append(Workload(name: "decode", variant: "records to JSON lines (logdec)", operations: n, unit: "records/s",
                             logkit: Command(tool: "logkit", line: "\(tool("logdec")) < base.seg > /dev/null")))

        var bulkNone = Workload(name: "bulk put", variant: "sync none, from a file", operations: n, unit: "records/s",
                                logkit: Command(tool: "logkit", line: "\(tool("logenc")) -a w.seg --sync none < records.jsonl > /dev/null", prepare: fresh))
        bulkNone.peers.append(Command(tool: "naive log (cat)", line: "cat records.jsonl > w.jsonl", prepare: "rm -f w.jsonl"))
        if peers.sqlite {
            bulkNone.peers.append(Command(tool: "sqlite3", line: "sqlite3 w.db \(quoted(sqliteSchema)) '.mode tabs' '.import records.tsv kv'", prepare: "rm -f w.db"))
        }
        if peers.tkrzw {
            bulkNone.peers.append(Command(tool: "tkrzw", line: "tkrzw_dbm_util import --dbm hash --tsv w.tkh records.tsv",
                                          prepare: "rm -f w.tkh && tkrzw_dbm_util create --dbm hash --append --buckets \(max(n * 2, 1024)) w.tkh"))
        }
        list.append(bulkNone)
        list.append(Workload(name: "bulk put", variant: "sync batch, from a pipe", operations: n, unit: "records/s",
                             logkit: Command(tool: "logkit", line: "cat records.jsonl | \(tool("logenc")) -a w.seg --sync batch > /dev/null", prepare: fresh)))
        list.append(Workload(name: "bulk put", variant: "sync none, from a pipe", operations: n, unit: "records/s",
                             logkit: Command(tool: "logkit", line: "cat records.jsonl | \(tool("logenc")) -a w.seg --sync none > /dev/null", prepare: fresh)))

        if includeFixedSize {
            // A thousand, or fewer for a tiny smoke run.
            let count = min(1000, n)
            let loop = { (body: String) in "i=0; while [ $i -lt \(count) ]; do \(body); i=$((i + 1)); done > /dev/null" }
            var singles = Workload(name: "single puts", variant: "\(count) processes, one put each", operations: count, unit: "puts/s",
                                   logkit: Command(tool: "logkit", line: loop("\(tool("logenc")) -a w.seg single-$i value-$i"),
                                                   prepare: "cp base.seg w.seg && rm -f w.seg.lock"))
            if peers.sqlite {
                singles.peers.append(Command(tool: "sqlite3", line: loop("sqlite3 w.db \"INSERT OR REPLACE INTO kv VALUES('single-$i', 'value-$i', 0)\""),
                                             prepare: "cp base.db w.db"))
            }
            if peers.tkrzw {
                singles.peers.append(Command(tool: "tkrzw", line: loop("tkrzw_dbm_util set w.tkh single-$i value-$i"), prepare: "cp base.tkh w.tkh"))
            }
            list.append(singles)
        }

        var repeated = Workload(name: "repeated puts", variant: "a new value for every key", operations: n, unit: "records/s",
                                logkit: Command(tool: "logkit", line: "\(tool("logenc")) -a w.seg --sync none < overwrites.jsonl > /dev/null",
                                                prepare: "cp base.seg w.seg && rm -f w.seg.lock"))
        if peers.sqlite {
            repeated.peers.append(Command(tool: "sqlite3",
                line: "sqlite3 w.db 'CREATE TEMP TABLE t(key TEXT, value TEXT, timestamp INTEGER);' '.mode tabs' '.import overwrites.tsv t' 'INSERT OR REPLACE INTO kv SELECT * FROM t;'",
                prepare: "cp base.db w.db"))
        }
        if peers.tkrzw {
            repeated.peers.append(Command(tool: "tkrzw", line: "tkrzw_dbm_util import --dbm hash --tsv w.tkh overwrites.tsv", prepare: "cp base.tkh w.tkh"))
        }
        list.append(repeated)

        var deletes = Workload(name: "deletes", variant: "every tenth key", operations: (n + 9) / 10, unit: "deletes/s",
                               logkit: Command(tool: "logkit", line: "\(tool("logenc")) -a w.seg --sync none < deletes.jsonl > /dev/null",
                                               prepare: "cp base.seg w.seg && rm -f w.seg.lock"))
        if peers.sqlite {
            deletes.peers.append(Command(tool: "sqlite3",
                line: "sqlite3 w.db 'CREATE TEMP TABLE d(key TEXT);' '.import deletes.tsv d' 'DELETE FROM kv WHERE key IN (SELECT key FROM d);'",
                prepare: "cp base.db w.db"))
        }
        if peers.tkrzw { deletes.skipped.append(("tkrzw", "tkrzw_dbm_util has no batch remove; one process per key is the single-puts shape")) }
        list.append(deletes)

        let key = data.probeKey
        var get = Workload(name: "get", variant: "one process per lookup", operations: 1, unit: "lookups/s",
                           logkit: Command(tool: "logkit", line: "logidx get base.idx \(key)", argv: ["\(bin)/logidx", "get", "base.idx", key]),
                           minimumRuns: 30)
        get.peers.append(Command(tool: "naive log (grep)", line: "grep -F '\"key\":\"\(key)\"' naive.jsonl | tail -n 1"))
        if peers.sqlite {
            let query = "SELECT value FROM kv WHERE key='\(key)'"
            get.peers.append(Command(tool: "sqlite3", line: "sqlite3 base.db \(quoted(query))", argv: [Runner.which("sqlite3")!, "base.db", query]))
        }
        if peers.tkrzw {
            get.peers.append(Command(tool: "tkrzw", line: "tkrzw_dbm_util get base.tkh \(key)", argv: [Runner.which("tkrzw_dbm_util")!, "get", "base.tkh", key]))
        }
        list.append(get)

        var batch = Workload(name: "get", variant: "\(data.lookupCount) keys on stdin", operations: data.lookupCount, unit: "lookups/s",
                             logkit: Command(tool: "logkit", line: "\(tool("logidx")) get base.idx - < keys.txt > /dev/null"))
        if peers.sqlite {
            batch.peers.append(Command(tool: "sqlite3",
                line: "sqlite3 base.db 'CREATE TEMP TABLE q(key TEXT);' '.import keys.txt q' 'SELECT kv.value FROM q JOIN kv USING(key);' > /dev/null"))
        }
        list.append(batch)

        var scan = Workload(name: "scan", variant: "every record as text", operations: n, unit: "records/s",
                            logkit: Command(tool: "logkit", line: "\(tool("logscan")) base.seg > /dev/null"))
        scan.peers.append(Command(tool: "cat (floor)", line: "cat base.seg > /dev/null"))
        if peers.jq { scan.peers.append(Command(tool: "naive log (jq)", line: "jq -c . naive.jsonl > /dev/null")) }
        if peers.sqlite { scan.peers.append(Command(tool: "sqlite3", line: "sqlite3 base.db 'SELECT * FROM kv;' > /dev/null")) }
        if peers.lmdb { scan.peers.append(Command(tool: "lmdb", line: "mdb_dump -p -n base.mdb/db > /dev/null")) }
        // `list` stops at 10 records unless told otherwise.
        if peers.tkrzw { scan.peers.append(Command(tool: "tkrzw", line: "tkrzw_dbm_util list --items \(n) base.tkh > /dev/null")) }
        list.append(scan)

        // Run without a shell, like the logfix runs they are compared with.
        var verify = Workload(name: "verify scan", variant: "checksums only (logscan --count)", operations: n, unit: "records/s",
                              logkit: Command(tool: "logkit", line: "logscan --count base.seg", argv: ["\(bin)/logscan", "--count", "base.seg"]))
        verify.peers.append(Command(tool: "cat (floor)", line: "cat base.seg", argv: [Runner.which("cat") ?? "/bin/cat", "base.seg"]))
        // The checksum floor: zlib's CRC-32 (the same polynomial) over the
        // segment's bytes, mapped, timed inside Python so its start is not counted.
        if let python = Runner.which("python3") {
            let script = "import mmap,time,zlib;f=open('base.seg','rb');m=mmap.mmap(f.fileno(),0,access=mmap.ACCESS_READ);t=time.perf_counter();zlib.crc32(m);print(int((time.perf_counter()-t)*1e6))"
            verify.peers.append(Command(tool: "zlib crc32 (floor)", line: "python3 -c \(quoted(script))", argv: [python, "-c", script], selfTimed: true))
        }
        if peers.tkrzw { verify.peers.append(Command(tool: "tkrzw", line: "tkrzw_dbm_util inspect --validate base.tkh > /dev/null")) }
        if peers.sqlite { verify.peers.append(Command(tool: "sqlite3", line: "sqlite3 base.db 'PRAGMA integrity_check;' > /dev/null")) }
        list.append(verify)

        // Each run starts without an index, as sqlite3's starts from a table
        // without one: replacing the last run's 100 MB index would add the
        // kernel's freeing of it (30-40 ms here) to logkit's time alone.
        var index = Workload(name: "index build", variant: "from logscan --no-values", operations: n, unit: "records/s",
                             logkit: Command(tool: "logkit", line: "\(tool("logscan")) --no-values base.seg | \(tool("logidx")) -o w.idx", prepare: "rm -f w.idx"))
        if peers.sqlite {
            index.peers.append(Command(tool: "sqlite3", line: "sqlite3 w.db 'CREATE INDEX by_key ON kv(key);'", prepare: "cp heap.db w.db"))
        }
        list.append(index)
        var indexFromSegment = Workload(name: "index build", variant: "from the segment", operations: n, unit: "records/s",
                                        logkit: Command(tool: "logkit", line: "logidx -o w.idx base.seg", argv: ["\(bin)/logidx", "-o", "w.idx", "base.seg"],
                                                        prepare: "rm -f w.idx"))
        if peers.sqlite {
            indexFromSegment.peers.append(Command(tool: "sqlite3", line: "sqlite3 w.db 'CREATE INDEX by_key ON kv(key);'", prepare: "cp heap.db w.db"))
        }
        list.append(indexFromSegment)

        list.append(Workload(name: "recovery", variant: "clean segment, full verify", operations: n, unit: "records/s",
                             logkit: Command(tool: "logkit", line: "logfix r.seg", argv: ["\(bin)/logfix", "r.seg"],
                                             prepare: "cp base.seg r.seg && rm -f r.seg.lock")))
        var recovery = Workload(name: "recovery", variant: "torn tail, full verify", operations: n, unit: "records/s",
                                logkit: Command(tool: "logkit", line: "logfix r.seg", argv: ["\(bin)/logfix", "r.seg"],
                                                prepare: "cp base.seg r.seg && rm -f r.seg.lock && truncate -s -10 r.seg"))
        if peers.tkrzw {
            recovery.peers.append(Command(tool: "tkrzw", line: "tkrzw_dbm_util restore r.tkh r2.tkh",
                                          prepare: "cp base.tkh r.tkh && truncate -s -10 r.tkh && rm -f r2.tkh"))
        }
        list.append(recovery)
        list.append(Workload(name: "recovery", variant: "torn tail after a 1 KB tail, --from-index", operations: 8, unit: "records/s",
                             logkit: Command(tool: "logkit", line: "logfix --index r.idx --from-index r.seg",
                                             argv: ["\(bin)/logfix", "--index", "r.idx", "--from-index", "r.seg"],
                                             prepare: "cp base.seg r.seg && rm -f r.seg.lock && \(tool("logenc")) -a r.seg --sync none < tail.jsonl > /dev/null && truncate -s -10 r.seg"),
                             minimumRuns: 20))

        var compaction = Workload(name: "compaction", variant: "half the records overwritten or deleted", operations: n, unit: "records/s",
                                  logkit: Command(tool: "logkit", line: "\(tool("logpack")) --in-place c.seg > /dev/null",
                                                  prepare: "cp churn.seg c.seg && rm -f c.seg.lock c.seg.compacting"))
        if peers.tkrzw {
            compaction.peers.append(Command(tool: "tkrzw", line: "tkrzw_dbm_util rebuild c.tkh", prepare: "cp churn.tkh c.tkh"))
        }
        list.append(compaction)
        return list
    }
}
