import LBCore

/// Why a bundle could not be written or opened.
public struct BundleError: LocatedError {
  public var path: String?
  public var line: Int? { nil }
  public var reason: String
  public var hint: String
  public var category: FailureCategory

  public init(path: String?, reason: String, hint: String, category: FailureCategory) {
    self.path = path
    self.reason = reason
    self.hint = hint
    self.category = category
  }
}
