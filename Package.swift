// swift-tools-version: 6.1
// lbscope: which client went to which Pod, and why the traffic is uneven.
import PackageDescription

let package = Package(
  name: "lbscope",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "lbscope", targets: ["lbscope"]),
    .library(name: "LBCore", targets: ["LBCore"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
  ],
  targets: [
    // C adapters: only these targets see C types.
    .systemLibrary(
      name: "CPcap",
      pkgConfig: "libpcap",
      providers: [.apt(["libpcap-dev"])]
    ),
    .systemLibrary(
      name: "CNetfilterConntrack",
      pkgConfig: "libnetfilter_conntrack",
      providers: [.apt(["libnetfilter-conntrack-dev"])]
    ),

    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    // Inline C helpers for speed (a cache prefetch hint, malloc settings); no library.
    .systemLibrary(name: "CTuning"),

    // Plain values: addresses, tuples, observations, services. No I/O, no Foundation.
    .target(name: "LBCore"),

    // Readers: untrusted input in, core values out.
    .target(
      name: "LBConntrack",
      dependencies: ["LBCore", .product(name: "SystemPackage", package: "swift-system")]
    ),

    // kube-proxy's datapaths (iptables-save, nftables, IPVS, xt_recent) into one RuleSet.
    .target(
      name: "LBRules",
      dependencies: ["LBCore", "LBConntrack", .product(name: "SystemPackage", package: "swift-system")],
      exclude: ["README.md", "nftables/README.md", "ipvs/README.md"]
    ),

    // The live kernel: conntrack over netlink (table dumps and events), signals, namespaces.
    .target(
      name: "LBLive",
      dependencies: ["LBCore", "LBConntrack", "CNetfilterConntrack"]
    ),

    // Node snapshots: manifest, .tar.gz (ustar + zlib), and opening a bundle as inputs.
    .target(name: "LBBundle", dependencies: ["LBCore", "LBReport", "CZlib"]),

    // Collecting a bundle on the node: tools run with fixed argv, /proc files, netlink.
    .target(name: "LBCollect", dependencies: ["LBCore", "LBBundle", "LBLive", "LBCapture"]),

    // Packet traces: a pure Swift pcap/pcapng reader and decoder; only the BPF adapter imports CPcap.
    .target(
      name: "LBPcap",
      dependencies: ["LBCore", "CPcap", .product(name: "SystemPackage", package: "swift-system")],
      exclude: ["README.md"]
    ),

    // Live capture through libpcap into rotating pcapng files; only LiveCapture sees CPcap.
    .target(name: "LBCapture", dependencies: ["LBCore", "CPcap"]),

    // Prefix-preserving address pseudonyms and keyed name hashes for sharing reports.
    .target(name: "LBAnonymize", dependencies: ["LBCore"]),

    // Analyses: core values in, core values out.
    .target(name: "LBAnalysis", dependencies: ["LBCore", "CTuning"], exclude: ["README.md"]),

    // Renderers: an analysis result in, text out.
    .target(name: "LBReport", dependencies: ["LBCore", "LBAnalysis"]),

    // `kubectl … -o yaml` listings: YAML (through Yams, which brings Foundation) into LBReport's
    // JSON value, so the names reader is the same for both; only this target sees Yams.
    .target(name: "LBYAML", dependencies: ["LBReport", .product(name: "Yams", package: "Yams")]),

    // The thin command line.
    .executableTarget(
      name: "lbscope",
      dependencies: [
        "LBCore", "LBConntrack", "LBRules", "LBAnalysis", "LBReport", "LBPcap", "LBLive",
        "LBBundle", "LBCollect", "LBAnonymize", "LBCapture", "LBYAML", "CTuning",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "SystemPackage", package: "swift-system"),
      ],
      // Release builds link the Swift runtime and Foundation in: one binary to copy to a node,
      // with only Debian's C libraries beside it (README), that also starts in half the time
      // (`lbscope --version`: 7 ms instead of 13 ms; most of that is resolving the shared
      // libraries' symbols, paid by every run). `-static-stdlib` alone leaves out the static
      // Foundation's own C libraries, which the modules built against the shared one do not
      // name. Debug builds (and the test bundle, which links this target) stay dynamic.
      linkerSettings: [
        .unsafeFlags(
          [
            "-static-stdlib", "-Xlinker", "-lCoreFoundation", "-Xlinker", "-l_FoundationICU", "-Xlinker",
            "-l_FoundationCShims", "-Xlinker", "-l_FoundationCollections", "-Xlinker", "-lstdc++",
          ],
          .when(platforms: [.linux], configuration: .release))
      ]
    ),

    .testTarget(name: "LBCoreTests", dependencies: ["LBCore"]),
    .testTarget(name: "LBConntrackTests", dependencies: ["LBCore", "LBConntrack"]),
    .testTarget(name: "LBRulesTests", dependencies: ["LBCore", "LBRules", "LBAnalysis"]),
    .testTarget(name: "LBPcapTests", dependencies: ["LBCore", "LBPcap", "LBAnalysis"]),
    .testTarget(name: "LBAnonymizeTests", dependencies: ["LBCore", "LBAnonymize", "LBConntrack"]),
    .testTarget(name: "LBAnalysisTests", dependencies: ["LBCore", "LBAnalysis", "LBConntrack"]),
    .testTarget(
      name: "LBReportTests", dependencies: ["LBCore", "LBAnalysis", "LBReport", "LBConntrack", "LBYAML"],
      exclude: ["Golden"]),
    .testTarget(name: "LBScopeCLITests", dependencies: ["lbscope"]),
    // Labs in network namespaces and the built binary, for the tests that need a live kernel.
    .target(name: "LBLabSupport", dependencies: ["LBLive"], path: "Tests/LBLabSupport"),
    .testTarget(
      name: "LBLiveTests", dependencies: ["LBCore", "LBConntrack", "LBLive", "LBLabSupport", "lbscope"]),
    .testTarget(
      name: "LBCaptureTests",
      dependencies: ["LBCore", "LBCapture", "LBPcap", "LBLive", "LBLabSupport", "lbscope"]),
    .testTarget(name: "LBBundleTests", dependencies: ["LBCore", "LBBundle", "LBLive"]),
  ],
  swiftLanguageModes: [.v6]
)

// Fuzzing (`scripts/fuzz`): one libFuzzer binary over every reader, added only when
// LBSCOPE_FUZZ is set, so ordinary builds never see it. Sources in Fuzz/, one file per target.
if Context.environment["LBSCOPE_FUZZ"] != nil {
  package.targets.append(
    .executableTarget(
      name: "lbscope-fuzz",
      dependencies: ["LBCore", "LBConntrack", "LBRules", "LBPcap", "LBReport", "LBYAML"],
      path: "Fuzz"))
}
