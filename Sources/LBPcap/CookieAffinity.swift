import LBCore

/// Cookie names and values met in plaintext HTTP/1.x heads, kept by hash: a flow record holds
/// only hashes; the text of each name and value is stored once, up to `limit` strings (about
/// 4096 × a cookie's length), so reports can name them.
public final class HTTPStrings {
  public let limit: Int
  var text: [UInt64: String] = [:]
  public init(limit: Int = 4096) { self.limit = limit }

  /// The hash of `start..<end`, remembering its text the first time (allocates only then).
  func intern(_ p: ByteView, _ start: Int, _ end: Int) -> UInt64 {
    let h = HTTP.hash(p, start, end) | 1
    if text[h] == nil && text.count < limit, let bytes = p.slice(start, end - start) {
      text[h] = String(decoding: bytes.rawBuffer, as: UTF8.self)
    }
    return h
  }

  public func string(_ hash: UInt64) -> String? { text[hash] }
}

/// Finds affinity cookies: per Service frontend and cookie name, which backend each value's
/// connections went to. A name whose repeated values each stay on one backend (and that
/// together reach several backends) is an affinity cookie, whoever sets it.
///
/// Bound: `maxNames` names per frontend and `maxValues` values per name; further ones are not
/// tracked.
public struct CookieAffinityTracker {
  public var maxNames = 64
  public var maxValues = 4096
  /// Connections with a repeated value needed before a verdict.
  public var minimumConnections = 4
  /// Share of those connections on their value's usual backend needed to call it affinity.
  public var minimumConsistency = 0.9

  struct Key: Hashable {
    var frontend: Endpoint
    var proto: TransportProtocol
    var name: UInt64
  }

  var byName: [Key: [UInt64: [Endpoint: Int]]] = [:]
  var namesPerFrontend: [Endpoint: Int] = [:]

  public init() {}

  /// One connection to `frontend` that DNAT sent to `backend`, carrying cookie `name=value`.
  mutating func add(
    frontend: Endpoint, proto: TransportProtocol, backend: Endpoint, name: UInt64, value: UInt64
  ) {
    let key = Key(frontend: frontend, proto: proto, name: name)
    if byName[key] == nil {
      guard namesPerFrontend[frontend, default: 0] < maxNames else { return }
      namesPerFrontend[frontend, default: 0] += 1
      byName[key] = [:]
    }
    guard var values = byName[key] else { return }
    byName[key] = nil  // keep the dictionary uniquely referenced while it changes
    if values[value] != nil || values.count < maxValues {
      values[value, default: [:]][backend, default: 0] += 1
    }
    byName[key] = values
  }

  /// The affinity cookies found, sorted by frontend, protocol and name.
  public func results(strings: HTTPStrings) -> [CookieAffinityObservation] {
    var out: [CookieAffinityObservation] = []
    for (key, values) in byName {
      var connections = 0
      var consistent = 0
      var repeated = 0
      var backendsReached = Set<Endpoint>()
      var example: (count: Int, value: UInt64, backend: Endpoint)?
      for (value, backends) in values {
        let total = backends.values.reduce(0, +)
        guard total >= 2 else { continue }
        repeated += 1
        connections += total
        // The usual backend; ties broken by address so the result is deterministic.
        guard let top = backends.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }) else { continue }
        consistent += top.value
        backendsReached.insert(top.key)
        let candidate = (total, value, top.key)
        if let e = example {
          let smaller = (strings.string(value) ?? "") < (strings.string(e.value) ?? "")
          if total > e.count || (total == e.count && smaller) { example = candidate }
        } else {
          example = candidate
        }
      }
      guard connections >= minimumConnections, backendsReached.count >= 2, let example else { continue }
      let consistency = Double(consistent) / Double(connections)
      guard consistency >= minimumConsistency else { continue }
      let name = strings.string(key.name) ?? "?"
      out.append(
        CookieAffinityObservation(
          frontend: key.frontend, proto: key.proto, name: name, values: repeated, connections: connections,
          consistency: consistency,
          example:
            "\(name)=\(strings.string(example.value) ?? "?") → \(example.backend) (\(example.count) connections)"
        ))
    }
    return out.sorted { ($0.frontend, $0.proto, $0.name) < ($1.frontend, $1.proto, $1.name) }
  }
}
