// swift-tools-version:6.0
import PackageDescription

// No package dependencies: the Swift toolchain and the C library only.
//
// The library is layered; each target may use only those listed under it, so
// a dependency pointing the wrong way is a compile error:
//
//   LogCLI     options, usage, the one error-to-exit-status map
//   LogNATS    the NATS client: protocol, connection, JetStream, KV buckets
//   LogStore   segments: append, read, recover, compact, index
//   LogJSON    JSON lines: records in and out, the index's lines
//   LogIO      file descriptors, buffers, mmap, lines, paths
//   LogFormat  the record layout, its codec and checksum
//   CLogCRC    the CRC-32 folding kernel, the one part in C (see its header)
// Release builds drop the run-time exclusivity checks: across module
// boundaries the optimizer cannot prove accesses to the buffers' counters
// disjoint, and the checks cost a fifth of an index build. The compile-time
// checks stay, and debug builds (the unit tests) keep the run-time ones.
let release: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let layers: [Target.Dependency] = ["LogFormat", "LogIO", "LogJSON", "LogStore", "LogCLI"]

let package = Package(
    name: "logkit",
    targets: [
        .target(name: "CLogCRC"),
        .target(name: "LogFormat", dependencies: ["CLogCRC"], exclude: ["README.md"], swiftSettings: release),
        .target(name: "LogIO", exclude: ["README.md"], swiftSettings: release),
        .target(name: "LogJSON", dependencies: ["LogFormat", "LogIO"], exclude: ["README.md"], swiftSettings: release),
        .target(name: "LogStore", dependencies: ["LogFormat", "LogIO", "LogJSON"], exclude: ["README.md"], swiftSettings: release),
        .target(name: "LogNATS", dependencies: ["LogFormat", "LogIO", "LogJSON"], exclude: ["README.md"], swiftSettings: release),
        .target(name: "LogCLI", dependencies: ["LogFormat", "LogIO", "LogJSON", "LogStore", "LogNATS"], exclude: ["README.md"], swiftSettings: release),
        .executableTarget(name: "logenc", dependencies: layers, swiftSettings: release),
        .executableTarget(name: "logdec", dependencies: layers, swiftSettings: release),
        .executableTarget(name: "logscan", dependencies: layers, swiftSettings: release),
        .executableTarget(name: "logidx", dependencies: layers, swiftSettings: release),
        .executableTarget(name: "logfix", dependencies: layers, swiftSettings: release),
        .executableTarget(name: "logpack", dependencies: layers, swiftSettings: release),
        .executableTarget(name: "logsync", dependencies: layers + ["LogNATS"], swiftSettings: release),
        // The benchmark driver (make bench): not installed with the tools.
        .executableTarget(name: "logbench", dependencies: layers, swiftSettings: release),
        .testTarget(name: "LogKitTests", dependencies: layers + ["LogNATS"]),
    ]
)
