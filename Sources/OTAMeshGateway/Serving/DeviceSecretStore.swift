import Foundation
import NIOConcurrencyHelpers
import OTAMeshDevices
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
#endif

/// A device secret file that cannot be used. Names the file and what is wrong, never its content.
public enum DeviceSecretError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    /// Readable by others than its owner (it must be 0600, like an SSH key).
    case tooOpen(path: String, mode: UInt32)
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "device secrets \(path): cannot read: \(reason)"
        case let .malformed(path, reason): "device secrets \(path): \(reason)"
        case let .tooOpen(path, mode): "device secrets \(PrivateFileError(path: path, mode: mode))"
        case let .unwritable(path, reason): "device secrets \(path): cannot write: \(reason)"
        }
    }
}

/// The per-device secrets push adapters send (HTTP basic auth, ArduinoOTA passwords):
/// `DATA/keys/device-secrets.json`, a JSON object of device id → `{"user": …, "password": …}`,
/// mode 0600 in a 0700 directory, replaced atomically (temporary file + rename) on every change.
/// `otamesh device add --password-env/--password-file` writes it; the agent reads it when a push
/// starts and re-reads it whenever the file changed. Secrets leave it only as
/// ``PushCredentials`` (redacted in every printed form): never logged, never in an API answer.
public final class DeviceSecretStore: Sendable {
    public let path: String

    /// One device's entry; printed forms are redacted like ``PushCredentials``.
    struct Secret: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
        var user: String
        /// The push password; nil for a device with only app setting secrets.
        var password: String?
        /// Password-type app settings (`otamesh device config set`), prop → value.
        var settings: [String: String] = [:]
        /// A hawkBit DDI device's `TargetToken` (`otamesh device add --family ddi`).
        var targetToken: String?
        var credentials: PushCredentials? { password.map { PushCredentials(username: user, password: $0) } }
        var isEmpty: Bool { password == nil && settings.isEmpty && targetToken == nil }
        var description: String { "DeviceSecret(redacted)" }
        var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
    }

    private struct Loaded {
        var stamp: [Int64] = []
        var secrets: [String: Secret] = [:]
    }
    private let loaded = NIOLockedValueBox(Loaded())

    /// Accepts a file others can read (``PrivateFile``): the agent's `--insecure-permissions`.
    let allowOpen: Bool

    public init(path: String, allowOpenPermissions: Bool = false) {
        self.path = path
        allowOpen = allowOpenPermissions
    }

    /// `DATA/keys/device-secrets.json`.
    public static func path(dataDirectory: String) -> String { "\(dataDirectory)/keys/device-secrets.json" }

    /// The device's credentials, if the file names it; re-reads the file when it changed.
    public func credentials(for id: String) throws(DeviceSecretError) -> PushCredentials? {
        try current()[id]?.credentials
    }

    /// The device's password-type app settings (prop → value); empty when it has none.
    public func settingSecrets(for id: String) throws(DeviceSecretError) -> [String: String] {
        try current()[id]?.settings ?? [:]
    }

    /// Sets and removes password-type app settings of a device (atomically; nothing changes on error).
    public func setSettingSecrets(_ id: String, set values: [String: String], remove: [String]) throws(DeviceSecretError) {
        guard !values.isEmpty || !remove.isEmpty else { return }
        var all = try Self.read(path, allowOpen: allowOpen) ?? [:]
        var entry = all[id] ?? Secret(user: "admin", password: nil)
        entry.settings.merge(values) { _, new in new }
        for prop in remove { entry.settings[prop] = nil }
        all[id] = entry.isEmpty ? nil : entry
        try write(all)
    }

    /// A DDI device's `TargetToken`, if it has one.
    public func targetToken(for id: String) throws(DeviceSecretError) -> String? {
        try current()[id]?.targetToken
    }

    /// Sets (or, with nil, removes) a DDI device's `TargetToken`.
    public func setTargetToken(_ id: String, _ token: String?) throws(DeviceSecretError) {
        var all = try Self.read(path, allowOpen: allowOpen) ?? [:]
        var entry = all[id] ?? Secret(user: "admin", password: nil)
        entry.targetToken = token
        all[id] = entry.isEmpty ? nil : entry
        try write(all)
    }

    /// Device ids with a secret.
    public func ids() throws(DeviceSecretError) -> [String] {
        try current().keys.sorted()
    }

    /// Sets a device's user and password (the file is replaced atomically; nothing changes on error).
    public func set(_ id: String, user: String, password: String) throws(DeviceSecretError) {
        var all = try Self.read(path, allowOpen: allowOpen) ?? [:]
        all[id] = Secret(user: user, password: password, settings: all[id]?.settings ?? [:])
        try write(all)
    }

    /// Removes a device's secret; false when it had none.
    @discardableResult
    public func remove(_ id: String) throws(DeviceSecretError) -> Bool {
        guard var all = try Self.read(path, allowOpen: allowOpen), all[id] != nil else { return false }
        all[id] = nil
        try write(all)
        return true
    }

    // MARK: Reading

    /// The secrets as of the file's current state (cached by inode, size and change time).
    private func current() throws(DeviceSecretError) -> [String: Secret] {
        let stamp = Self.stamp(path)
        if let cached = loaded.withLockedValue({ $0.stamp == stamp && !stamp.isEmpty ? $0.secrets : nil }) { return cached }
        let secrets = try Self.read(path, allowOpen: allowOpen) ?? [:]
        loaded.withLockedValue { $0 = Loaded(stamp: stamp, secrets: secrets) }
        return secrets
    }

    /// inode, size, modification and change times (ns); empty when the file does not exist.
    static func stamp(_ path: String) -> [Int64] {
        var info = stat()
        guard stat(path, &info) == 0 else { return [] }
        return [
            Int64(info.st_ino), Int64(info.st_size), Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
            Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec),
        ]
    }

    /// The file's secrets; nil when there is no file.
    static func read(_ path: String, allowOpen: Bool = false) throws(DeviceSecretError) -> [String: Secret]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw .unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(path: path, reason: "not a regular file") }
        guard allowOpen || !PrivateFile.isOpen(mode: info.st_mode) else { throw .tooOpen(path: path, mode: UInt32(info.st_mode & 0o777)) }
        guard info.st_size <= 4 << 20 else { throw .malformed(path: path, reason: "larger than 4 MiB") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .unreadable(path: path, reason: n == 0 ? "file shrank while read" : String(cString: strerror(errno))) }
            offset += n
        }
        return try parse(bytes, path: path)
    }

    /// Parses the file. Errors say where (which device's entry) and what, never a value.
    static func parse(_ bytes: [UInt8], path: String) throws(DeviceSecretError) -> [String: Secret] {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) else {
            throw .malformed(path: path, reason: "not valid JSON (expected an object of device id → {\"user\", \"password\"})")
        }
        guard let entries = object as? [String: Any] else {
            throw .malformed(path: path, reason: "the top level must be a JSON object of device id → {\"user\", \"password\"}")
        }
        var secrets: [String: Secret] = [:]
        for (id, value) in entries {
            guard let entry = value as? [String: Any] else { throw .malformed(path: path, reason: "device \(id): expected an object with user and password") }
            let settings = entry["settings"] as? [String: String]
            guard entry["settings"] == nil || settings != nil else {
                throw .malformed(path: path, reason: "device \(id): settings is not an object of strings")
            }
            let token = entry["targetToken"] as? String
            guard entry["targetToken"] == nil || token != nil else { throw .malformed(path: path, reason: "device \(id): targetToken is not a string") }
            let password = entry["password"] as? String
            guard password != nil || (entry["password"] == nil && (settings != nil || token != nil)) else {
                throw .malformed(path: path, reason: "device \(id): password missing or not a string")
            }
            guard let user = (entry["user"] ?? "admin") as? String else { throw .malformed(path: path, reason: "device \(id): user is not a string") }
            secrets[id] = Secret(user: user, password: password, settings: settings ?? [:], targetToken: token)
        }
        return secrets
    }

    // MARK: Writing

    private func write(_ all: [String: Secret]) throws(DeviceSecretError) {
        let object = all.mapValues { secret -> [String: Any] in
            var entry: [String: Any] = ["user": secret.user]
            if let password = secret.password { entry["password"] = password }
            if !secret.settings.isEmpty { entry["settings"] = secret.settings }
            if let token = secret.targetToken { entry["targetToken"] = token }
            return entry
        }
        let data: Data
        do { data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]) } catch {
            throw .unwritable(path: path, reason: "cannot encode")
        }
        do throws(TrustError) {
            if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                let directory = String(path[..<slash])
                try FileSystem.makeDirectory(directory, mode: 0o700)
                chmod(directory, 0o700)
            }
            try FileSystem.write(path, Array(data) + [0x0A], mode: 0o600)
        } catch {
            throw .unwritable(path: path, reason: error.description)
        }
        loaded.withLockedValue { $0 = Loaded() }
    }
}
