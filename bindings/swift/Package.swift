// swift-tools-version:5.5
// SwiftPM package for libtern. Needs libtern installed where pkg-config finds it
// (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig); run `swift test` with LD_LIBRARY_PATH=<prefix>/lib.
import PackageDescription

let package = Package(
    name: "Tern",
    products: [.library(name: "Tern", targets: ["Tern"])],
    targets: [
        .systemLibrary(name: "CTern", path: "Sources/CTern", pkgConfig: "tern"),
        .target(name: "Tern", dependencies: ["CTern"]),
        .testTarget(name: "TernTests", dependencies: ["Tern"]),
    ]
)
