import LBAnalysis
import LBCore
import LBReport

/// A saved `kubectl get pods,services,endpointslices -A -o json` or `-o yaml`, told apart by
/// content (not by the file's name): JSON starts with `{` or `[` after white space and an
/// optional byte-order mark; anything else is read as YAML.
public enum KubernetesListing {
  public enum Format: String, Sendable { case json, yaml }

  /// The format the bytes are in.
  public static func format(of bytes: [UInt8]) -> Format {
    var rest = bytes[...]
    if rest.starts(with: [0xEF, 0xBB, 0xBF]) { rest = rest.dropFirst(3) }
    let first = rest.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
    return first == UInt8(ascii: "{") || first == UInt8(ascii: "[") ? .json : .yaml
  }

  /// The names in a listing of either format; errors name the file and line.
  public static func names(from bytes: [UInt8], path: String) throws(KubernetesListError) -> ClusterNames {
    switch format(of: bytes) {
    case .json:
      return try KubernetesNames.parse(bytes, path: path)
    case .yaml:
      let root: JSON
      do {
        root = try YAMLReader().parse(bytes, path: path)
      } catch {
        throw KubernetesListError(path: path, line: error.line, reason: error.reason)
      }
      return try KubernetesNames.names(in: root, path: path)
    }
  }
}
