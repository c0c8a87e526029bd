import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory, removed when released.
public final class TemporaryDirectory {
    public let path: String

    public init() throws {
        var template = Array("/tmp/otamesh-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { "\(path)/\(name)" }
}

/// A size-limited (optionally read-only) tmpfs mounted for one test and detached when
/// released. Root only: gate tests with ``TestEnvironment/isRoot``.
public final class Tmpfs {
    public let path: String

    public init(at path: String, size: String, readOnly: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("tmpfs", path, "tmpfs", readOnly ? UInt(MS_RDONLY) : 0, "size=\(size)") == 0 else {
            throw CocoaError(.fileWriteNoPermission)
        }
        self.path = path
    }

    deinit { umount2(path, Int32(MNT_DETACH)) }
}

public enum TestEnvironment {
    public static var isRoot: Bool { geteuid() == 0 }
}

public func sha256Hex(_ bytes: some DataProtocol) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// Deterministic pseudo-random bytes (xorshift64).
public func patterned(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[index] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}

/// Polls `condition` until it holds or `timeout` seconds pass; returns whether it held.
/// This waits on a condition with a deadline — never a sleep standing in for one.
@discardableResult
public func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if condition() { return true }
        if Date() >= deadline { return false }
        usleep(2_000)
    }
}

public func listing(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
}
