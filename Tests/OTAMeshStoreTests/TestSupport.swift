import Foundation
import OTAMeshCommon
import OTAMeshStore
@_exported import OTAMeshTestSupport

/// A manually advanced clock for deterministic LRU order.
final class TestClock: @unchecked Sendable {
    // @unchecked: tests drive it from one task at a time.
    private var value: Double
    init(_ start: Double = 1_000) { value = start }
    func now() -> Double { value }
    func advance(_ seconds: Double = 1) { value += seconds }
}

func digest(of bytes: [UInt8]) throws -> BlobDigest {
    try BlobDigest(hex: sha256Hex(bytes))
}

/// Opens a store in `dir` with an injected clock.
func openStore(_ dir: TemporaryDirectory, quota: Int64? = nil, clock: TestClock = TestClock()) throws -> BlobStore {
    try BlobStore(configuration: StoreConfiguration(directory: dir.file("data"), quotaBytes: quota), clock: WallClock { WallTime(seconds: clock.now()) })
}

/// The StoreError a throwing call fails with, or nil when it succeeds.
func failureOf(_ body: () throws -> Void) -> StoreError? {
    do {
        try body()
        return nil
    } catch {
        return error as? StoreError
    }
}
