import Foundation
import LBBundle
import LBCore
import LBLive
import Testing

/// Writes a small bundle directory by hand (a manifest and two files).
func makeBundle(_ name: String) throws -> String {
  let root = FileManager.default.temporaryDirectory.appendingPathComponent(
    "lbscope-bundle-test-\(UUID().uuidString)"
  )
  .appendingPathComponent(name).path
  try FileManager.default.createDirectory(atPath: root + "/xt_recent", withIntermediateDirectories: true)
  let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  let conntrack = try Data(contentsOf: repository.appendingPathComponent("captures/uniform/conntrack-L.txt"))
  try conntrack.write(to: URL(fileURLWithPath: root + "/conntrack-L.txt"))
  try "src=192.168.50.11 ttl: 64 last_seen: 4295 oldest_pkt: 1 4295\n".write(
    toFile: root + "/xt_recent/KUBE-SEP-A", atomically: true, encoding: .utf8)
  let manifest = BundleManifest(
    toolVersion: "test", createdAt: 1,
    items: [
      ManifestItem(file: "conntrack-L.txt", kind: "conntrack", source: "netlink", bytes: conntrack.count),
      ManifestItem(file: "xt_recent/KUBE-SEP-A", kind: "xt-recent", source: "/proc/net/xt_recent/KUBE-SEP-A"),
      ManifestItem(file: nil, kind: "ipvs", argv: ["ipvsadm", "-S", "-n"], error: "ipvsadm: not found"),
    ])
  try manifest.rendered().write(toFile: root + "/manifest.json", atomically: true, encoding: .utf8)
  return root
}

@Suite struct BundleTests {
  @Test func manifestRoundTripsThroughItsJSON() throws {
    let manifest = BundleManifest(
      toolVersion: "0.1.0", createdAt: 1_700_000_000,
      items: [
        ManifestItem(
          file: "iptables-save.txt", kind: "iptables-save", argv: ["iptables-save", "-c"], exitStatus: 0,
          timedOut: false, durationSeconds: 0.25, bytes: 1137),
        ManifestItem(
          file: nil, kind: "nft", argv: ["nft", "list", "ruleset"], signal: 15, timedOut: true,
          durationSeconds: 120, error: "killed after the 120 s time box; \"quoted\"\n"),
      ])
    let parsed = BundleManifest.parse(Array(manifest.rendered().utf8))
    #expect(parsed == manifest)
  }

  @Test func rejectsAManifestThatIsNotJSON() {
    #expect(BundleManifest.parse(Array("{\"items\": [".utf8)) == nil)
    #expect(BundleManifest.parse(Array("[]".utf8)) == nil)
    #expect(BundleManifest.parse(Array(String(repeating: "[", count: 100_000).utf8)) == nil)
  }

  @Test func directoryListsItsFilesWithKindsFromTheManifest() throws {
    let root = try makeBundle("node-a")
    let bundle = try Bundle.open(root)
    #expect(bundle.files.map(\.name) == ["conntrack-L.txt", "xt_recent/KUBE-SEP-A"])
    #expect(bundle.files.map(\.kind) == [.conntrack, .xtRecent])
    #expect(bundle.files(of: [.conntrack]).map(\.path) == [root + "/conntrack-L.txt"])
    #expect(Bundle.isBundle(root))
    #expect(!Bundle.isBundle(root + "/conntrack-L.txt"))
  }

  @Test func archiveHoldsTheSameFilesAndIsRemovedAfterUse() throws {
    let root = try makeBundle("node-b")
    let archive = root + ".tar.gz"
    try BundleArchive.write(directory: root, to: archive)
    var extractedPath = ""
    do {
      let bundle = try Bundle.open(archive)
      #expect(bundle.files.map(\.name) == ["conntrack-L.txt", "xt_recent/KUBE-SEP-A"])
      let original = try Data(contentsOf: URL(fileURLWithPath: root + "/conntrack-L.txt"))
      let copy = try Data(contentsOf: URL(fileURLWithPath: bundle.files[0].path))
      #expect(copy == original)
      extractedPath = bundle.files[0].path
    }
    #expect(!FileManager.default.fileExists(atPath: extractedPath), "extraction is removed with the Bundle")
    // GNU tar reads it too.
    let listed = ChildProcess.run(["tar", "-tzf", archive])
    #expect(listed.status == 0)
    #expect(String(decoding: listed.output, as: UTF8.self).contains("node-b/xt_recent/KUBE-SEP-A"))
  }

  @Test func everyPrefixOfAnArchiveFailsCleanly() throws {
    let root = try makeBundle("node-c")
    let archive = root + ".tar.gz"
    try BundleArchive.write(directory: root, to: archive)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: archive))
    var failures = 0
    for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
      let cut = root + "-cut.tar.gz"
      try bytes.prefix(length).write(to: URL(fileURLWithPath: cut))
      do {
        _ = try Bundle.open(cut)
      } catch {
        failures += 1
        #expect(error.category == .unrecognizedInput || error.category == .unreadableInput)
      }
    }
    #expect(failures > 90)
  }

  @Test func refusesArchivesThatEscapeTheirDirectory() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "lbscope-evil-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: dir + "/b", withIntermediateDirectories: true)
    try "x".write(toFile: dir + "/b/f", atomically: true, encoding: .utf8)
    // GNU tar keeps "../" with -P; lbscope must refuse it.
    let made = ChildProcess.run(["tar", "-czPf", dir + "/evil.tar.gz", "-C", dir + "/b", "../b/f"])
    #expect(made.status == 0)
    #expect(throws: BundleError.self) { _ = try Bundle.open(dir + "/evil.tar.gz") }
  }
}
