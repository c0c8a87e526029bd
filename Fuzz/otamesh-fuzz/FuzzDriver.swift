import CLibFuzzer
import OTAMeshFuzz

#if canImport(Glibc)
import Glibc
#endif

// The libFuzzer driver for every target in FuzzTargets.all: OTAMESH_FUZZ_TARGET names the one
// to run; the rest of the command line is libFuzzer's (corpus directories, -max_total_time=…).
// Built only by `make fuzz` (OTAMESH_FUZZ=1, -sanitize=fuzzer,address); see docs/robustness.md.

nonisolated(unsafe) var selected: FuzzTargets.Target?

func selectTarget() -> FuzzTargets.Target {
    if let selected { return selected }
    let name = getenv("OTAMESH_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTargets.all[name] else {
        print("otamesh-fuzz: set OTAMESH_FUZZ_TARGET to one of: \(FuzzTargets.names.joined(separator: " "))")
        exit(2)
    }
    selected = target
    return target
}

func runOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    selectTarget()(bytes)
    return 0
}

/// The callback libFuzzer's own main calls (a release build links libFuzzer's main).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    runOne(data, size)
}

/// Debug builds on Linux rename an executable's entry point to `<module>_main` (so tests can
/// link the module) and point `main` at it: this is that entry, and it hands over to libFuzzer.
@_cdecl("otamesh_fuzz_main")
public func otameshFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = selectTarget()
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in runOne(data, size) }
}
