// swift-tools-version:6.0
import PackageDescription

// No package dependencies: the Swift toolchain and the C library only.
//
// The library is layered; each target may use only those listed under it, so
// a dependency pointing the wrong way is a compile error:
//
//   LogCLI     options, usage, the one error-to-exit-status map
//   LogStore   segments: append, read, recover, compact, index
//   LogJSON    JSON lines: records in and out, the index's lines
//   LogIO      file descriptors, buffers, mmap, lines, paths
//   LogFormat  the record layout, its codec and checksum
let layers: [Target.Dependency] = ["LogFormat", "LogIO", "LogJSON", "LogStore", "LogCLI"]

let package = Package(
    name: "logkit",
    targets: [
        .target(name: "LogFormat", exclude: ["README.md"]),
        .target(name: "LogIO", exclude: ["README.md"]),
        .target(name: "LogJSON", dependencies: ["LogFormat", "LogIO"], exclude: ["README.md"]),
        .target(name: "LogStore", dependencies: ["LogFormat", "LogIO", "LogJSON"], exclude: ["README.md"]),
        .target(name: "LogCLI", dependencies: ["LogFormat", "LogIO", "LogJSON", "LogStore"], exclude: ["README.md"]),
        .executableTarget(name: "logenc", dependencies: layers),
        .executableTarget(name: "logdec", dependencies: layers),
        .executableTarget(name: "logscan", dependencies: layers),
        .executableTarget(name: "logidx", dependencies: layers),
        .executableTarget(name: "logfix", dependencies: layers),
        .executableTarget(name: "logpack", dependencies: layers),
        // The benchmark driver (make bench): not installed with the tools.
        .executableTarget(name: "logbench", dependencies: layers),
        .testTarget(name: "LogKitTests", dependencies: layers),
    ]
)
