#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one rule for files that hold secrets (admin keys, the site keyring, admin API tokens,
/// device secrets): only their owner may read or write them, like an SSH key. A file that gives
/// its group or others any access is refused unless the operator says otherwise
/// (`--insecure-permissions`).
public enum PrivateFile {
    /// True when `mode` gives the group or others any access.
    public static func isOpen(mode: mode_t) -> Bool { mode & 0o077 != 0 }

    /// Checks the file at `path` (following links, as reading it would). A missing file passes:
    /// whoever reads it reports that. With `allowOpen`, nothing is refused.
    public static func check(_ path: String, allowOpen: Bool = false) throws(PrivateFileError) {
        guard !allowOpen else { return }
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return }
        if isOpen(mode: info.st_mode) { throw PrivateFileError(path: path, mode: UInt32(info.st_mode & 0o777)) }
    }
}

/// A secret file readable or writable by others than its owner.
public struct PrivateFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let mode: UInt32

    public init(path: String, mode: UInt32) {
        self.path = path
        self.mode = mode
    }

    /// `0644`-style text.
    public var modeText: String {
        let octal = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - octal.count)) + octal
    }

    public var description: String {
        "\(path): mode \(modeText) gives group/other access; chmod 600 it, or pass --insecure-permissions"
    }
}
