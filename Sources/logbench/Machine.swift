// What the numbers were measured on: every report carries it, because a
// figure without its machine is not a figure.

import LogFormat
import LogIO
import LogJSON
import LogStore
import LogCLI
import Glibc

struct Machine {
    var cpuModel = "unknown"
    var cpuCount = 0
    var os = "unknown"
    var kernel = "unknown"
    var swiftVersion = "unknown"

    static func describe() -> Machine {
        var machine = Machine()
        machine.cpuCount = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let cpuinfo = try? Runner.readText("/proc/cpuinfo"),
           let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            machine.cpuModel = line[line.index(after: colon)...].trimmingSpaces()
        }
        if let release = try? Runner.readText("/etc/os-release"),
           let line = release.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") }) {
            machine.os = line.dropFirst("PRETTY_NAME=".count).filter { $0 != "\"" }
        }
        var names = utsname()
        if uname(&names) == 0 {
            machine.kernel = withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        if let version = try? Runner.shell("swift --version 2>&1 | head -n 1", capture: true, check: false).output,
           !version.isEmpty {
            machine.swiftVersion = version.trimmingSpaces()
        }
        return machine
    }

    /// One line for the top of a report.
    var summary: String {
        "\(cpuModel), \(cpuCount) CPUs; \(os), Linux \(kernel); \(swiftVersion)"
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" || $0 == "\n" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\n" }.reversed())
    }
}
