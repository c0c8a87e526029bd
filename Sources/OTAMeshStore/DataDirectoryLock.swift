#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on a data directory (`flock` on `<dir>/lock`), held for the life of
/// the process that mutates the store. The kernel releases it when the process dies,
/// even by SIGKILL, so a crash never leaves a stale lock.
public final class DataDirectoryLock: Sendable {
    let fd: Int32
    public let path: String

    /// Takes the lock or fails at once with ``StoreError/locked(path:holder:)`` naming the holder's pid.
    public init(directory: String) throws(StoreError) {
        let path = directory + "/lock"
        let fd = try POSIX.open(path, O_RDWR | O_CREAT, mode: 0o644, operation: "open lock file")
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            var holder = "another process"
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                let pid = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
                if !pid.isEmpty { holder = "process \(pid)" }
            }
            Glibc.close(fd)
            if code == EWOULDBLOCK { throw .locked(path: directory, holder: holder) }
            throw .io(operation: "lock", path: path, errno: code)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.fd = fd
        self.path = path
    }

    deinit {
        flock(fd, LOCK_UN)
        Glibc.close(fd)
    }
}
