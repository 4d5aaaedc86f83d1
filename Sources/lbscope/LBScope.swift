import ArgumentParser
import LBCore

@main
struct LBScope: ParsableCommand {
  static let version = "0.1.0"

  static let configuration = CommandConfiguration(
    commandName: "lbscope",
    abstract: "Which client went to which Pod, and why the traffic is uneven.",
    discussion: """
      Reads a Kubernetes node's own state (conntrack tables and events) and explains how
      Service traffic spreads over backends. Works on the node or offline on saved files.

      Exit codes: 0 success; 1 findings at or above --fail-on; 64 usage error; 65 damaged input
      (report written from what could be read); 66 unreadable or unrecognised input; 73 output
      cannot be written; 77 missing privilege; 130 interrupted.
      """,
    version: version,
    subcommands: [
      ReportCommand.self, ConntrackCommand.self, RulesCommand.self, PcapCommand.self,
      CaptureCommand.self, WatchCommand.self, CollectCommand.self, MergeCommand.self,
    ]
  )
}
