#if canImport(Glibc)
import Glibc
#endif

/// Thin, throwing wrappers over the few system calls the store needs. They retry EINTR
/// and turn every failure into ``StoreError/io(operation:path:errno:)`` with the path.
package enum POSIX {
    package static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644, operation: String = "open") throws(StoreError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw .io(operation: operation, path: path, errno: errno) }
        }
    }

    /// Writes all of `buffer`, retrying short writes and EINTR.
    package static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws(StoreError) {
        var offset = 0
        while offset < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "write", path: path, errno: errno)
            }
            offset += n
        }
    }

    /// Reads up to `buffer.count` bytes into an array; returns 0 at end of file.
    package static func read(_ fd: Int32, into buffer: inout [UInt8], path: String) throws(StoreError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return n }
            if errno != EINTR { throw .io(operation: "read", path: path, errno: errno) }
        }
    }

    /// Reads up to `buffer.count` bytes; returns 0 at end of file.
    package static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws(StoreError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw .io(operation: "read", path: path, errno: errno) }
        }
    }

    package static func fsync(_ fd: Int32, path: String) throws(StoreError) {
        while Glibc.fsync(fd) != 0 {
            if errno != EINTR { throw .io(operation: "fsync", path: path, errno: errno) }
        }
    }

    /// fsyncs a directory so that a rename or create inside it is durable.
    package static func fsyncDirectory(_ path: String) throws(StoreError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY, operation: "open directory")
        defer { Glibc.close(fd) }
        try fsync(fd, path: path)
    }

    package static func rename(_ from: String, _ to: String) throws(StoreError) {
        guard Glibc.rename(from, to) == 0 else { throw .io(operation: "rename to \(to)", path: from, errno: errno) }
    }

    /// Removes a file; a missing file is not an error.
    package static func unlink(_ path: String) throws(StoreError) {
        guard Glibc.unlink(path) == 0 || errno == ENOENT else { throw .io(operation: "unlink", path: path, errno: errno) }
    }

    package static func truncate(_ fd: Int32, to length: Int64, path: String) throws(StoreError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw .io(operation: "truncate", path: path, errno: errno) }
    }

    /// Creates a directory (mode 0755 unless given); an existing directory is fine.
    /// Returns true when it was created.
    @discardableResult
    package static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(StoreError) -> Bool {
        if mkdir(path, mode) == 0 { return true }
        let code = errno
        guard code == EEXIST else { throw .io(operation: "mkdir", path: path, errno: code) }
        guard isDirectory(path) else { throw .unusableDirectory(path: path, reason: "exists and is not a directory") }
        return false
    }

    package static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Size of a file, or nil when it does not exist.
    package static func fileSize(_ path: String) throws(StoreError) -> Int64? {
        var info = stat()
        if stat(path, &info) == 0 { return Int64(info.st_size) }
        if errno == ENOENT { return nil }
        throw .io(operation: "stat", path: path, errno: errno)
    }

    /// Names in a directory (without `.` and `..`); empty when it does not exist.
    package static func listDirectory(_ path: String) throws(StoreError) -> [String] {
        guard let dir = opendir(path) else {
            if errno == ENOENT { return [] }
            throw .io(operation: "list", path: path, errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
