import ArgumentParser
import LBAnalysis
import LBCore

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
  case markdown, json
}

enum FailOn: String, ExpressibleByArgument, CaseIterable {
  case critical, warning, never
}

/// Options every analysing command shares: output, focus and the statistical thresholds.
struct ReportOptions: ParsableArguments {
  @Option(name: .shortAndLong, help: "Report format.")
  var format: ReportFormat = .markdown

  @Option(name: .shortAndLong, help: "Write the report here instead of standard output.")
  var output: String?

  @Flag(help: "Replace an existing --output file.")
  var force = false

  @Option(help: ArgumentHelp("Only report the service with this frontend.", valueName: "VIP:PORT"))
  var service: String?

  @Option(help: "Exit with 1 when a finding of this severity or worse exists.")
  var failOn: FailOn = .never

  @Option(help: "Significance level for the imbalance test.")
  var alpha: Double = 0.001

  @Option(help: "Smallest effect size (Cohen's w) that counts as imbalanced.")
  var minEffect: Double = 0.1

  @Option(help: "Significance level for calling a client sticky.")
  var stickyAlpha: Double = 0.01

  @Option(help: "Client rows per service in Markdown.")
  var topClients: Int = 20

  @Option(help: "Clients listed per service in JSON, busiest first (0: all); the rest are summed.")
  var jsonClients: Int = 1000

  @Flag(help: "Replace every IP address with a keyed, prefix-preserving pseudonym (for sharing).")
  var anonymize = false

  @Option(
    help: ArgumentHelp(
      "The secret key for --anonymize (default: $LBSCOPE_ANONYMIZE_KEY); same key, same pseudonyms.",
      valueName: "PATH"))
  var anonymizeKeyFile: String?

  @Flag(help: "With --anonymize, also replace namespace, Service, Pod and node names by keyed hashes.")
  var anonymizeNames = false

  func validate() throws {
    if let service, Endpoint(service) == nil {
      throw ValidationError("--service wants VIP:PORT or [IPv6]:PORT, not '\(service)'")
    }
    guard alpha > 0 && alpha < 1 else { throw ValidationError("--alpha must be between 0 and 1") }
    guard stickyAlpha > 0 && stickyAlpha < 1 else {
      throw ValidationError("--sticky-alpha must be between 0 and 1")
    }
    guard minEffect >= 0 else { throw ValidationError("--min-effect must not be negative") }
    guard topClients > 0 else { throw ValidationError("--top-clients must be positive") }
    guard jsonClients >= 0 else { throw ValidationError("--json-clients must not be negative") }
    if anonymizeKeyFile != nil || anonymizeNames, !anonymize {
      throw ValidationError("--anonymize-key-file and --anonymize-names go with --anonymize")
    }
    // Refuse before reading any input, in one line.
    if anonymize {
      do { _ = try AnonymizeKey.load(file: anonymizeKeyFile) } catch { Failure(error).exit() }
    }
  }

  /// The anonymizer `--anonymize` asks for, or `nil`. The key was checked by `validate()`.
  func anonymizer(names: [String]) -> ReportAnonymizer? {
    guard anonymize else { return nil }
    do {
      return ReportAnonymizer(
        key: try AnonymizeKey.load(file: anonymizeKeyFile), names: names, hashNames: anonymizeNames)
    } catch {
      Failure(error).exit()
    }
  }

  var analysisOptions: AnalysisOptions {
    var options = AnalysisOptions()
    options.alpha = alpha
    options.minEffectSize = minEffect
    options.stickyAlpha = stickyAlpha
    options.service = service.flatMap(Endpoint.init)
    options.topClients = topClients
    // Keep only the clients the report lists (the diagnosis quotes the busiest three).
    switch format {
    case .json: options.clientsKept = jsonClients == 0 ? 0 : max(jsonClients, 3)
    case .markdown: options.clientsKept = max(topClients, 3)
    }
    return options
  }
}
