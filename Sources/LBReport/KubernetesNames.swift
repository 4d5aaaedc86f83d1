import LBAnalysis
import LBCore

/// Reads `kubectl get pods,services,endpointslices -A -o json` (a `List` of Pod, Service and
/// EndpointSlice items) into the names a report labels addresses with. Items of other kinds are
/// skipped; an item missing a field is skipped, not an error: a saved listing may be partial.
public enum KubernetesNames {
  /// Parses the listing; throws when the bytes are not JSON or not a `List`.
  public static func parse(_ bytes: [UInt8], path: String) throws(JSONParseError) -> ClusterNames {
    let root = try JSONParser().parse(bytes, path: path)
    guard case .object(let top) = root, case .array(let items)? = top["items"] else {
      throw JSONParseError(
        path: path, line: nil, offset: 0,
        problem:
          "not a Kubernetes List (no \"items\" array); save it with `kubectl get pods,services,endpointslices -A -o json`"
      )
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
