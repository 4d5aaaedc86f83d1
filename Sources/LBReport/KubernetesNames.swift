import LBAnalysis
import LBCore

/// Why a saved Kubernetes listing cannot be read: not JSON (or YAML), or not a `List`.
public struct KubernetesListError: LocatedError, Equatable {
  public var path: String?
  public var line: Int?
  public var reason: String
  public var category: FailureCategory { .unrecognizedInput }
  public var hint: String { KubernetesNames.hint }

  public init(path: String?, line: Int?, reason: String) {
    self.path = path
    self.line = line
    self.reason = reason
  }
}

/// Reads `kubectl get pods,services,endpointslices -A -o json` (a `List` of Pod, Service and
/// EndpointSlice items) into the names a report labels addresses with. Items of other kinds are
/// skipped; an item missing a field is skipped, not an error: a saved listing may be partial.
/// The YAML form (`-o yaml`) is read by LBYAML's `KubernetesListing` into the same `JSON` value
/// and walked by `names(in:path:)`.
public enum KubernetesNames {
  /// The hint readers of a listing give with their errors.
  public static let hint =
    "save it with `kubectl get pods,services,endpointslices -A -o json > FILE` (or `-o yaml`)"

  /// Parses a JSON listing; throws when the bytes are not JSON or not a `List`.
  public static func parse(_ bytes: [UInt8], path: String) throws(KubernetesListError) -> ClusterNames {
    let root: JSON
    do {
      root = try JSONParser().parse(bytes, path: path)
    } catch {
      throw KubernetesListError(path: path, line: error.line, reason: error.reason)
    }
    return try names(in: root, path: path)
  }

  /// The names in a parsed listing (JSON or YAML); throws when it is not a `List`.
  public static func names(in root: JSON, path: String) throws(KubernetesListError) -> ClusterNames {
    guard case .object(let top) = root, case .array(let items)? = top["items"] else {
      throw KubernetesListError(path: path, line: nil, reason: "not a Kubernetes List (no \"items\" array)")
    }
    var names = ClusterNames()
    for item in items {
      guard case .object(let object) = item, let kind = string(object["kind"]) else { continue }
      let metadata = object["metadata"]
      guard let name = string(field(metadata, "name")) else { continue }
      let namespace = string(field(metadata, "namespace")) ?? "default"
      switch kind {
      case "Pod":
        let status = object["status"]
        let node = string(field(object["spec"], "nodeName"))
        var ips: [String] = []
        if let ip = string(field(status, "podIP")) { ips.append(ip) }
        for entry in array(field(status, "podIPs")) {
          if let ip = string(field(entry, "ip")), !ips.contains(ip) { ips.append(ip) }
        }
        let hostNetwork = bool(field(object["spec"], "hostNetwork")) ?? false
        for ip in ips.compactMap(IPAddress.init) where !hostNetwork {
          names.pods[ip] = "\(namespace)/\(name)"
          if let node { names.podNodes[ip] = node }
        }
        if let node, let host = string(field(status, "hostIP")).flatMap(IPAddress.init) {
          names.nodes[host] = node
        }
      case "Service":
        let spec = object["spec"]
        var clusterIPs = array(field(spec, "clusterIPs")).compactMap { string($0).flatMap(IPAddress.init) }
        if clusterIPs.isEmpty, let ip = string(field(spec, "clusterIP")).flatMap(IPAddress.init) {
          clusterIPs = [ip]
        }
        for port in array(field(spec, "ports")) {
          guard let number = int(field(port, "port")), let p = UInt16(exactly: number) else { continue }
          let portName = string(field(port, "name")).flatMap { $0.isEmpty ? nil : $0 } ?? String(number)
          let label = "\(namespace)/\(name):\(portName)"
          for ip in clusterIPs { names.services[Endpoint(ip, p)] = label }
          if let nodePort = int(field(port, "nodePort")).flatMap({ UInt16(exactly: $0) }) {
            names.nodePorts[nodePort] = label
          }
        }
      case "EndpointSlice":
        for endpoint in array(object["endpoints"]) {
          let target = field(endpoint, "targetRef")
          guard string(field(target, "kind")) == "Pod", let pod = string(field(target, "name")) else {
            continue
          }
          let podNamespace = string(field(target, "namespace")) ?? namespace
          let node = string(field(endpoint, "nodeName"))
          for address in array(field(endpoint, "addresses")).compactMap({ string($0).flatMap(IPAddress.init) }
          ) {
            if names.pods[address] == nil { names.pods[address] = "\(podNamespace)/\(pod)" }
            if let node, names.podNodes[address] == nil { names.podNodes[address] = node }
          }
        }
      default:
        continue
      }
    }
    return names
  }

  static func field(_ value: JSON?, _ key: String) -> JSON? {
    guard case .object(let object)? = value else { return nil }
    return object[key]
  }

  static func string(_ value: JSON?) -> String? {
    guard case .string(let s)? = value else { return nil }
    return s
  }

  static func int(_ value: JSON?) -> Int? {
    guard case .int(let i)? = value else { return nil }
    return Int(exactly: i)
  }

  static func bool(_ value: JSON?) -> Bool? {
    guard case .bool(let b)? = value else { return nil }
    return b
  }

  static func array(_ value: JSON?) -> [JSON] {
    guard case .array(let a)? = value else { return [] }
    return a
  }
}
