// libFuzzer entry points for every lbscope reader. One binary holds all targets; the environment
// variable LBSCOPE_FUZZ_TARGET (set by scripts/fuzz) picks the one a run exercises. Built only
// with `-sanitize=fuzzer,address -parse-as-library` by scripts/fuzz: libFuzzer supplies `main`.

#if canImport(Glibc)
  import Glibc
#endif

/// The target a run exercises, chosen once in `LLVMFuzzerInitialize`.
nonisolated(unsafe) var selected: FuzzTarget?

/// Called by libFuzzer once before the first input: picks the target or stops with a usage line.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
  _ argc: UnsafeMutablePointer<Int32>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
  let name = getenv("LBSCOPE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
  guard let target = FuzzTarget.all.first(where: { $0.name == name }) else {
    let names = FuzzTarget.all.map(\.name).joined(separator: " ")
    let message = Array("lbscope-fuzz: set LBSCOPE_FUZZ_TARGET to one of: \(names)\n".utf8)
    _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(64)
  }
  selected = target
  return 0
}

/// Called by libFuzzer for every input. Returns 0 (inputs are never rejected from the corpus).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  guard let target = selected else { return 0 }
  target.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
  return 0
}

/// libFuzzer's driver (`FuzzerDriver.cpp`), linked in by `-sanitize=fuzzer`.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
  _ argc: UnsafeMutablePointer<Int32>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The entry point SwiftPM links executables to (it points `main` at `<product>_main` so tests can
/// link the module): hands the command line to libFuzzer's driver, which calls
/// `LLVMFuzzerInitialize` and then `LLVMFuzzerTestOneInput` for every input.
@_cdecl("lbscope_fuzz_main")
public func fuzzMain(
  _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
  var count = argc
  var vector = argv
  return runDriver(&count, &vector) { data, size in fuzzerTestOneInput(data, size) }
}
