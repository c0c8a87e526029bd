#if canImport(Glibc)
import Glibc
#endif

/// Files under a local directory as a ``RemoteFiles`` source (an unpacked bundle, a mirror on
/// disk, test fixtures). Reads at most `maxLength` bytes, so an oversized file is refused
/// without being read whole.
public struct DirectoryFiles: RemoteFiles {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    public func fetch(_ path: String, maxLength: Int64) async throws(TrustError) -> [UInt8] {
        try read(path, maxLength: maxLength)
    }

    /// Synchronous read (for local callers that are not async).
    public func read(_ path: String, maxLength: Int64) throws(TrustError) -> [UInt8] {
        guard !path.split(separator: "/").contains("..") else { throw .fetch(file: path, reason: "path escapes the source") }
        let full = "\(root)/\(path)"
        let fd = open(full, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw .notFound(file: path) }
            throw .fetch(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .fetch(file: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { return bytes }
            bytes += buffer[0..<n]
            if Int64(bytes.count) > maxLength { throw .tooLarge(file: path, limit: maxLength) }
        }
    }
}

/// Trusted metadata in a directory (`root.json`, `timestamp.json`, …), written atomically
/// (temporary file, fsync, rename) so a crash never leaves a half-written trusted file.
public struct DirectoryPersistence: MetadataPersistence {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public func load(_ name: String) -> [UInt8]? {
        try? DirectoryFiles(root: directory).read(name, maxLength: 64 << 20)
    }

    public func save(_ name: String, _ bytes: [UInt8]) throws(TrustError) {
        try save(name, bytes, mode: 0o644)
    }

    /// Saves with a file mode; the file is created with it (a private key is never readable by
    /// others, not even for an instant).
    public func save(_ name: String, _ bytes: [UInt8], mode: mode_t) throws(TrustError) {
        let path = "\(directory)/\(name)"
        let temporary = "\(path).tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .fetch(file: name, reason: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw .fetch(file: name, reason: "cannot write \(temporary): \(reason)")
            }
            offset += n
        }
        // The umask may have narrowed the mode at creation; set exactly what was asked.
        guard fchmod(fd, mode) == 0, fsync(fd) == 0, close(fd) == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw .fetch(file: name, reason: "cannot store \(path): \(String(cString: strerror(errno)))")
        }
    }

    public func remove(_ name: String) {
        unlink("\(directory)/\(name)")
    }
}

/// Trusted metadata held in memory: staged until an import has verified everything, or seeded
/// from a directory in tests.
public final class MemoryPersistence: MetadataPersistence, @unchecked Sendable {
    // @unchecked: one import (or one test) owns it.
    public var files: [String: [UInt8]]

    public init(files: [String: [UInt8]] = [:]) { self.files = files }

    /// Seeded with every regular file in `directory`.
    public convenience init(directory: String) {
        var files: [String: [UInt8]] = [:]
        let source = DirectoryFiles(root: directory)
        for name in FileSystem.list(directory, regularFilesOnly: true) { files[name] = try? source.read(name, maxLength: 64 << 20) }
        self.init(files: files)
    }

    public func load(_ name: String) -> [UInt8]? { files[name] }
    public func save(_ name: String, _ bytes: [UInt8]) throws(TrustError) { files[name] = bytes }
    public func remove(_ name: String) { files[name] = nil }
}
