import Foundation
import OTAMeshApps
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshStore

/// A change an admin makes to the device registry (`otamesh device assign|unassign|tag|accept|
/// add|remove`). While an agent runs, the CLI sends it to the agent's admin API
/// (`POST /api/v1/devices/changes`), which applies it to the registry it serves from, so
/// nothing writes the data directory behind the agent's back; with no agent running the CLI
/// applies it itself. Either way ``apply(_:to:)`` does the work and says what it did, line by
/// line, in the same words.
public enum DeviceChange: Codable, Sendable, Equatable {
    case assign(ids: [String], target: String)
    case unassign(id: String)
    case tag(ids: [String], tags: [String])
    case accept(ids: [String])
    /// A push device by hand; its password, if any, goes to the secret store (never the registry).
    case add(record: DeviceRecord, user: String?, password: String?)
    case remove(id: String)
    /// App settings for devices (`otamesh device config set|import`), checked against each
    /// device's app version; password values go to the secret store.
    case configure(rows: [SettingsAssignment])
}

/// Why a device change was refused; nothing was written.
public struct DeviceChangeError: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// No such device, or no such target.
        case notFound
        /// The change itself is malformed.
        case invalid
        /// The registry or the secret store could not be written.
        case failed
    }

    public var kind: Kind
    public var message: String
    /// What was done before the refusal (`accept` of several ids, some unknown).
    public var done: [String]

    public init(_ kind: Kind, _ message: String, done: [String] = []) {
        self.kind = kind
        self.message = message
        self.done = done
    }

    public var description: String { message }
}

/// What a device change needs: the registry, the secret store, the verified targets (for
/// `assign`), the admission mode (for `accept`'s note) and the time.
public struct DeviceChanges: Sendable {
    public let registry: DeviceRegistry
    public let secrets: DeviceSecretStore
    /// Verified target paths, and whether each is in the cache.
    public let targets: @Sendable () throws -> [String: Bool]
    public let admission: DeviceAdmission
    public let dataDirectory: String
    /// Dates of assignments and tags (the registry keeps seconds).
    public let clock: WallClock
    /// The app catalog of the trusted release (for `configure`).
    public let apps: @Sendable () throws -> AppCatalog
    /// A device's newest settings from another gateway of the site (gossip), if newer ones exist there.
    public let siteSettings: @Sendable (String) -> (owner: String, settings: DeviceSettings)?
    func now() -> Double { clock.now().seconds }

    public init(
        registry: DeviceRegistry, secrets: DeviceSecretStore, targets: @escaping @Sendable () throws -> [String: Bool], admission: DeviceAdmission,
        dataDirectory: String, clock: WallClock, apps: @escaping @Sendable () throws -> AppCatalog = { AppCatalog(targets: []) },
        siteSettings: @escaping @Sendable (String) -> (owner: String, settings: DeviceSettings)? = { _ in nil }
    ) {
        self.apps = apps
        self.siteSettings = siteSettings
        self.registry = registry
        self.secrets = secrets
        self.targets = targets
        self.admission = admission
        self.dataDirectory = dataDirectory
        self.clock = clock
    }

    /// The verified target paths of `catalog`, and whether each is cached.
    public static func targets(_ catalog: ServingCatalog) -> [String: Bool] {
        catalog.targets.mapValues { catalog.blobs[$0.sha256] != nil }
    }

    /// The app catalog of the verified targets under `tufDirectory`.
    public static func apps(tufDirectory: String, store: BlobStore) throws -> AppCatalog {
        AppCatalog(targets: try ReleaseCatalog.trustedTargets(tufDirectory: tufDirectory, store: store).map(\.0))
    }

    /// The verified target paths under `tufDirectory`, and whether `store` holds each.
    public static func targets(tufDirectory: String, store: BlobStore) throws -> [String: Bool] {
        Dictionary(
            try ReleaseCatalog.trustedTargets(tufDirectory: tufDirectory, store: store).map { ($0.0.path, $0.inCache) }, uniquingKeysWith: { a, b in a || b })
    }

    /// Tags are letters, digits, `-` and `_`.
    public static func validTag(_ tag: String) -> Bool {
        !tag.isEmpty && tag.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
    }

    /// Applies `change`; returns what it did, one line per device.
    public func apply(_ change: DeviceChange) throws(DeviceChangeError) -> [String] {
        do {
            return try applyChecked(change)
        } catch let error as DeviceChangeError {
            throw error
        } catch {
            throw DeviceChangeError(.failed, "\(error)")
        }
    }

    private func applyChecked(_ change: DeviceChange) throws -> [String] {
        switch change {
        case .assign(let ids, let target):
            let ids = try Self.normalized(ids)
            guard let cached = try targets()[target] else { throw DeviceChangeError(.notFound, "target \(target) is not in the trusted metadata") }
            var lines: [String] = []
            for id in ids {
                try registry.assign(id, target: target, at: now())
                lines.append("\(id): assigned \(target)" + (cached ? "" : " (not in the cache yet: served once it arrives)"))
            }
            return lines
        case .unassign(let id):
            let id = try Self.normalized([id])[0]
            try registry.assign(id, target: nil, at: now())
            return ["\(id): no assignment"]
        case .tag(let ids, let tags):
            let ids = try Self.normalized(ids)
            for tag in tags where !Self.validTag(tag) { throw DeviceChangeError(.invalid, "tag '\(tag)': use letters, digits, - and _") }
            return try ids.map { id in
                try registry.setTags(id, tags: tags, at: now())
                return "\(id): " + (tags.isEmpty ? "no tags" : "tags \(tags.map { $0.lowercased() }.sorted().joined(separator: ","))")
            }
        case .accept(let ids):
            let ids = try Self.normalized(ids)
            var lines: [String] = []
            var unknown: [String] = []
            for id in ids {
                if try registry.accept(id) {
                    lines.append("\(id): accepted" + (admission == .open ? " (devices.admission is open: every device is updated anyway)" : ""))
                } else {
                    unknown.append(id)
                }
            }
            guard unknown.isEmpty else {
                throw DeviceChangeError(
                    .notFound,
                    "no device \(unknown.joined(separator: ", ")) in \(dataDirectory)/devices.sqlite (see otamesh devices; a device is listed once it asked or was discovered)",
                    done: lines)
            }
            return lines
        case .add(var record, let user, let password):
            record.id = try Self.normalized([record.id])[0]
            if record.family == .ddi {
                // A pull device: no address to reach it at; it authenticates with its TargetToken.
                guard DDI.isName(record.id) else {
                    throw DeviceChangeError(.invalid, "a DDI controller id is 1…64 letters, digits, '.', '_', '-' or ':', got \(record.id)")
                }
                let kept = try secrets.targetToken(for: record.id)
                let token = kept ?? Self.newToken()
                if kept == nil { try secrets.setTargetToken(record.id, token) }
                try registry.add(record)
                return [
                    kept == nil
                        ? "\(record.id): ddi device; TargetToken \(token) (shown once: configure the device with it, e.g. swupdate -u \"… -i \(record.id) -k \(token)\")"
                        : "\(record.id): ddi device; its TargetToken is kept (otamesh device remove \(record.id), then add it again, issues a new one)"
                ]
            }
            if let password { try secrets.set(record.id, user: user ?? "admin", password: password) }
            try registry.add(record)
            let shown = registry.device(record.id) ?? record
            return [
                "\(record.id): \(record.family.rawValue) at \(record.address), segment \(shown.effectiveSegment)" + (record.proxy.map { ", proxy \($0)" } ?? "")
                    + (password == nil ? "" : ", password stored")
            ]
        case .remove(let id):
            let id = try Self.normalized([id])[0]
            let removed = try registry.remove(id)
            let secret = try secrets.remove(id)
            guard removed || secret else { throw DeviceChangeError(.notFound, "no device \(id)") }
            return ["\(id): removed" + (secret ? " (and its secrets)" : "")]
        case .configure(let rows):
            return try configure(rows)
        }
    }

    /// A new DDI TargetToken: 128 random bits, hex.
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Device ids as the registry keys them; none empty.
    static func normalized(_ ids: [String]) throws(DeviceChangeError) -> [String] {
        let normalized = ids.map(DeviceRegistry.normalizedID).filter { !$0.isEmpty }
        guard !normalized.isEmpty, normalized.count == ids.count else { throw DeviceChangeError(.invalid, "no device id given") }
        return normalized
    }
}
