import Foundation
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
#endif

/// A blob being assembled from verified pieces: `PATH.part` holds the bytes at their offsets,
/// `PATH.have` one byte per piece (1: written and verified). Survives a restart: on open every
/// piece marked had is hashed again, so a piece whose bytes did not reach the disk before a
/// crash is simply fetched again.
public final class PieceFile: @unchecked Sendable {
    public let manifest: PieceManifest
    public let dataPath: String
    let havePath: String
    let data: Int32
    let marks: Int32
    let lock = NSLock()
    private var had: [Bool]

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let operation: String
        public let code: Int32
        public var description: String { "\(path): \(operation) failed (errno \(code))" }
    }

    /// Opens (or creates) the partial at `path` for `manifest`'s blob.
    public init(path: String, manifest: PieceManifest) throws {
        self.manifest = manifest
        let count = manifest.layout.count
        let (dataPath, havePath) = (path + ".part", path + ".have")
        (self.dataPath, self.havePath) = (dataPath, havePath)
        let data = open(dataPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard data >= 0 else { throw Failure(path: dataPath, operation: "open", code: errno) }
        let marks = open(havePath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard marks >= 0 else {
            let code = errno
            close(data)
            throw Failure(path: havePath, operation: "open", code: code)
        }
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(marks, $0.baseAddress, count, 0) }
        had = (0..<count).map { $0 < n && bytes[$0] == 1 }
        (self.data, self.marks) = (data, marks)
        guard ftruncate(data, off_t(manifest.layout.length)) == 0 else { throw Failure(path: dataPath, operation: "size", code: errno) }
        for index in 0..<count where had[index] {
            if (try? read(index)).map({ manifest.verify(index, $0) }) != true { try mark(index, false) }
        }
    }

    deinit {
        close(data)
        close(marks)
    }

    /// The pieces written and verified.
    public var have: [Bool] { lock.withLock { had } }

    public var isComplete: Bool { lock.withLock { !had.contains(false) } }

    /// Writes verified piece `index` (the caller checked it against the manifest).
    public func write(_ index: Int, _ bytes: [UInt8]) throws {
        let (offset, length) = manifest.layout.span(index)
        precondition(Int64(bytes.count) == length, "piece \(index) is \(length) bytes")
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(data, $0.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: dataPath, operation: "write", code: errno)
            }
            done += n
        }
        try mark(index, true)
    }

    /// Piece `index` as on disk.
    public func read(_ index: Int) throws -> [UInt8] {
        let (offset, length) = manifest.layout.span(index)
        var bytes = [UInt8](repeating: 0, count: Int(length))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(data, $0.baseAddress! + done, $0.count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: dataPath, operation: "read", code: errno)
            }
            if n == 0 { throw Failure(path: dataPath, operation: "read (short file)", code: 0) }
            done += n
        }
        return bytes
    }

    /// Makes the pieces durable (before the whole file is handed to the store).
    public func sync() throws {
        guard fsync(data) == 0 else { throw Failure(path: dataPath, operation: "fsync", code: errno) }
    }

    /// Deletes both files (after the store took the blob, or to start over).
    public func remove() {
        unlink(dataPath)
        unlink(havePath)
    }

    private func mark(_ index: Int, _ value: Bool) throws {
        var byte: UInt8 = value ? 1 : 0
        let n = pwrite(marks, &byte, 1, off_t(index))
        guard n == 1 else { throw Failure(path: havePath, operation: "write", code: errno) }
        lock.withLock { had[index] = value }
    }
}
