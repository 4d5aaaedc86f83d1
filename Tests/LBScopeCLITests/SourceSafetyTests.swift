import Foundation
import Testing

/// lbscope runs as root on production nodes: it never runs a shell, and the only code that
/// starts a program is `ChildProcess` (posix_spawn with a fixed argument vector, tools found on
/// a fixed search path). These checks read the sources, so a new call site fails the build's
/// tests before it ships.
@Suite struct SourceSafetyTests {
  /// Every `.swift` file under `Sources/` and `Fuzz/`, with its lines (comments removed).
  static let sources: [(path: String, lines: [String])] = {
    var result: [(String, [String])] = []
    for top in ["Sources", "Fuzz"] {
      let root = repository.appendingPathComponent(top)
      guard let walker = FileManager.default.enumerator(atPath: root.path) else { continue }
      for case let name as String in walker where name.hasSuffix(".swift") {
        let text = (try? String(contentsOf: root.appendingPathComponent(name), encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
          let code = line.trimmingCharacters(in: .whitespaces)
          return code.hasPrefix("//") ? "" : String(line)
        }
        result.append(("\(top)/\(name)", lines))
      }
    }
    return result.sorted { $0.0 < $1.0 }
  }()

  /// Calls that run a shell or start a program some other way than `ChildProcess`.
  static let forbidden: [(pattern: String, why: String)] = [
    (#"\bsystem\s*\("#, "system(3) runs /bin/sh"),
    (#"\bpopen\s*\("#, "popen(3) runs /bin/sh"),
    (#"/bin/(ba|da|z)?sh\b"#, "a shell"),
    (#"\bwordexp\s*\("#, "wordexp(3) may run a shell"),
    (#"\bProcess\s*\("#, "Foundation's Process (use ChildProcess)"),
    (#"\bNSTask\b"#, "Foundation's NSTask"),
    (#"\b(execl|execle|execlp|execv|execve|execvp|execvpe|fexecve)\s*\("#, "exec outside ChildProcess"),
    (#"\b(fork|vfork)\s*\("#, "fork outside ChildProcess"),
    (#"\bposix_spawnp\s*\("#, "posix_spawnp searches PATH"),
  ]

  @Test func noSourceRunsAShellOrStartsAProgramOutsideChildProcess() throws {
    try #require(Self.sources.count > 50, "the sources were found")
    var hits: [String] = []
    for (path, lines) in Self.sources {
      for (number, line) in lines.enumerated() {
        for (pattern, why) in Self.forbidden where line.range(of: pattern, options: .regularExpression) != nil
        {
          hits.append("\(path):\(number + 1): \(why): \(line.trimmingCharacters(in: .whitespaces))")
        }
        if line.range(of: #"\bposix_spawn\s*\("#, options: .regularExpression) != nil
          && path != "Sources/LBLive/ChildProcess.swift"
        {
          hits.append("\(path):\(number + 1): posix_spawn outside ChildProcess")
        }
      }
    }
    #expect(hits.isEmpty, "\(hits.joined(separator: "\n"))")
  }

  @Test func theCheckFindsWhatItLooksFor() {
    // The patterns match the calls they name (a check that matches nothing cannot fail).
    let samples = [
      "  _ = system(\"ls\")", "let p = popen(cmd, \"r\")", "argv = [\"/bin/sh\", \"-c\", s]",
      "let task = Process()", "execvp(name, argv)", "let pid = fork()", "posix_spawnp(&pid, …)",
    ]
    for sample in samples {
      #expect(
        Self.forbidden.contains { sample.range(of: $0.pattern, options: .regularExpression) != nil },
        "\(sample)")
    }
    #expect(
      !Self.forbidden.contains { "subsystem(x)".range(of: $0.pattern, options: .regularExpression) != nil })
  }

  /// The tools `collect` runs: the first word of every fixed argument vector in LBCollect.
  @Test func collectRunsOnlyTheNodeToolsItNames() throws {
    let allowed: Set<String> = [
      "iptables-save", "ip6tables-save", "iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save",
      "ip6tables-nft-save", "nft", "ipvsadm", "conntrack", "iptables", "ip",
    ]
    let collector = try #require(Self.sources.first { $0.path == "Sources/LBCollect/Collector.swift" })
    var first: Set<String> = []
    let argv = try Regex(#"\[\s*"([^"]+)",\s*"[^"]*""#)
    for line in collector.lines
    where line.contains("command(") || line.contains("ChildProcess.run(")
      || line.contains("(\"")
    {
      for match in line.matches(of: argv) {
        if let word = match.output[1].substring { first.insert(String(word)) }
      }
    }
    try #require(first.contains("iptables-save") && first.contains("ipvsadm"), "\(first)")
    #expect(first.isSubset(of: allowed), "\(first.subtracting(allowed))")
    // ChildProcess looks tools up on a fixed search path, never the environment's PATH.
    let child = try #require(Self.sources.first { $0.path == "Sources/LBLive/ChildProcess.swift" })
    #expect(!child.lines.contains { $0.contains("getenv(\"PATH\")") || $0.contains("execvp") })
  }
}
