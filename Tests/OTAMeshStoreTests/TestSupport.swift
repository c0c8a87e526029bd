import Crypto
import Foundation
import OTAMeshStore

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory, removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/otamesh-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { "\(path)/\(name)" }
}

/// A manually advanced clock for deterministic LRU order.
final class TestClock: @unchecked Sendable {
    // @unchecked: tests drive it from one task at a time.
    private var value: Double
    init(_ start: Double = 1_000) { value = start }
    func now() -> Double { value }
    func advance(_ seconds: Double = 1) { value += seconds }
}

func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

func digest(of bytes: [UInt8]) throws -> BlobDigest {
    try BlobDigest(hex: sha256Hex(bytes))
}

/// Deterministic pseudo-random bytes.
func patterned(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

func listing(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
}

enum TestEnvironment {
    static var isRoot: Bool { geteuid() == 0 }
}

/// Opens a store in `dir` with an injected clock.
func openStore(_ dir: TemporaryDirectory, quota: Int64? = nil, clock: TestClock = TestClock()) throws -> BlobStore {
    try BlobStore(configuration: StoreConfiguration(directory: dir.file("data"), quotaBytes: quota), now: { clock.now() })
}

/// A size-limited tmpfs mounted for one test (root only) and detached when released.
final class SmallTmpfs {
    let path: String

    init(at path: String, size: String, readOnly: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("tmpfs", path, "tmpfs", readOnly ? UInt(MS_RDONLY) : 0, "size=\(size)") == 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: ["errno": errno])
        }
        self.path = path
    }

    deinit { umount2(path, Int32(MNT_DETACH)) }
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
