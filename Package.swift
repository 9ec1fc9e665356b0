// swift-tools-version:6.0
import PackageDescription

// No package dependencies: the Swift toolchain and the C library only.
let package = Package(
    name: "logkit",
    targets: [
        .target(name: "Common"),
        .executableTarget(name: "logenc", dependencies: ["Common"]),
        .executableTarget(name: "logdec", dependencies: ["Common"]),
        .executableTarget(name: "logscan", dependencies: ["Common"]),
        .executableTarget(name: "logidx", dependencies: ["Common"]),
        .executableTarget(name: "logfix", dependencies: ["Common"]),
        .executableTarget(name: "logpack", dependencies: ["Common"]),
        // The benchmark driver (make bench): not installed with the tools.
        .executableTarget(name: "logbench", dependencies: ["Common"]),
        .testTarget(name: "CommonTests", dependencies: ["Common"]),
    ]
)
