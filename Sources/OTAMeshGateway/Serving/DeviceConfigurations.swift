import Crypto
import Foundation
import NIOConcurrencyHelpers
import OTAMeshApps
import OTAMeshCommon
import OTAMeshStore
import OTAMeshTrust

/// The devices' configuration images (apps.md): built from each device's settings, its app
/// version and its password values when a device asks in filesystem mode, kept content-addressed
/// in `DATA/keys/config/sha256-<hex>.img` (0600 in a 0700 directory, because an image may hold a
/// password; the blob store's files are readable by others) and rebuilt only when the settings,
/// the passwords or the trusted release changed.
public final class DeviceConfigurations: Sendable {
    let registry: DeviceRegistry
    let secrets: DeviceSecretStore
    let releases: ReleaseCatalog
    let store: BlobStore
    let tufDirectory: String
    public let directory: String
    /// A device's newest settings on another gateway of the site (gossip).
    let siteSettings: @Sendable (String) -> (owner: String, settings: DeviceSettings)?

    /// What an offer was made from: it stays good while these are the same.
    struct Key: Equatable {
        var settings: String?
        /// The firmware version the device last reported (an app's newer version takes the
        /// settings made for an older one).
        var version: String?
        /// The newest settings another gateway of the site gossips, and that gateway.
        var site: String?
        var owner: String?
        var secrets: [String: String]
        var generation: UInt64
    }
    struct Entry {
        var key: Key
        var offer: ConfigurationOffer
    }
    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    /// The images some device's offer names (kept apart: looked up on every blob served).
    private let offered = NIOLockedValueBox<Set<String>>([])
    /// The config-id each device last reported in filesystem mode (in memory: it reports at every check).
    private let reported = NIOLockedValueBox<[String: String]>([:])

    /// Notes the config-id a device reported.
    public func noteReported(_ id: String, configID: String) {
        reported.withLockedValue { $0[id] = configID }
    }

    /// Whether the device's filesystem holds its current configuration: it reported the id of
    /// the image this gateway offers it now. `version`: the firmware the device reports in this
    /// request; one the registry does not hold yet (it just rebooted into it) has no image built
    /// for it, so it is not current until its next filesystem check says so.
    public func isCurrent(_ id: String, version: String? = nil) -> Bool {
        // Most devices never ask for a filesystem: nothing reported, nothing to look up.
        guard let said = reported.withLockedValue({ $0[id] }) else { return false }
        if let version, version != registry.device(id)?.version { return false }
        guard let configID = offer(id)?.configID else { return false }
        return said == configID
    }
    private let apps = NIOLockedValueBox<(generation: UInt64, catalog: AppCatalog)?>(nil)

    public init(
        registry: DeviceRegistry, secrets: DeviceSecretStore, releases: ReleaseCatalog, store: BlobStore, tufDirectory: String, dataDirectory: String,
        siteSettings: @escaping @Sendable (String) -> (owner: String, settings: DeviceSettings)? = { _ in nil }
    ) {
        self.siteSettings = siteSettings
        // Images are derived data, rebuilt (byte for byte) when a device next asks: those of an
        // earlier run would never be looked at again, so they go.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "\(dataDirectory)/keys/config")) ?? []
        where name.hasPrefix("sha256-") && name.hasSuffix(".img") {
            unlink("\(dataDirectory)/keys/config/\(name)")
        }
        self.registry = registry
        self.secrets = secrets
        self.releases = releases
        self.store = store
        self.tufDirectory = tufDirectory
        directory = "\(dataDirectory)/keys/config"
    }

    func key(_ id: String) -> Key {
        let site = siteSettings(id)
        let record = registry.device(id)
        return Key(
            settings: record?.settings, version: record?.version, site: site?.settings.stored, owner: site?.owner,
            secrets: (try? secrets.settingSecrets(for: id)) ?? [:],
            generation: releases.generation)
    }

    /// The device's offer, if one was prepared from what holds now.
    public func offer(_ id: String) -> ConfigurationOffer? {
        let current = key(id)
        return entries.withLockedValue { $0[id] }.flatMap { $0.key == current ? $0.offer : nil }
    }

    /// Where the image of this SHA-256 is written (whether offered or not).
    public func file(sha256: String) -> String { "\(directory)/sha256-\(sha256).img" }

    /// The file of a configuration image this gateway offers, by SHA-256 (nil for any other
    /// digest: no file system call on the serving path of ordinary blobs).
    public func path(sha256: String) -> String? {
        offered.withLockedValue { $0.contains(sha256) } ? "\(directory)/sha256-\(sha256).img" : nil
    }

    /// Builds (or finds) the device's image and caches the offer. Blocking: run it off the event loop.
    @discardableResult
    public func prepare(_ id: String) -> ConfigurationOffer {
        let key = key(id)
        let offer = build(id, key: key)
        let (replaced, inUse) = entries.withLockedValue { entries -> (String?, Set<String>) in
            let old = entries[id]?.offer.blob?.sha256
            entries[id] = Entry(key: key, offer: offer)
            let inUse = Set(entries.values.compactMap { $0.offer.blob?.sha256 })
            return (old.flatMap { inUse.contains($0) ? nil : $0 }, inUse)
        }
        offered.withLockedValue { $0 = inUse }
        if let replaced { unlink("\(directory)/sha256-\(replaced).img") }
        return offer
    }

    func appCatalog() throws -> AppCatalog {
        let generation = releases.generation
        if let cached = apps.withLockedValue({ $0 }), cached.generation == generation { return cached.catalog }
        let catalog = AppCatalog(targets: try ReleaseCatalog.trustedTargets(tufDirectory: tufDirectory, store: store).map(\.0))
        apps.withLockedValue { $0 = (generation, catalog) }
        return catalog
    }

    func build(_ id: String, key: Key) -> ConfigurationOffer {
        let local = DeviceSettings(stored: key.settings)
        let remote = DeviceSettings(stored: key.site).flatMap { $0.isNewer(than: local) ? $0 : nil }
        guard var settings = remote ?? local else { return ConfigurationOffer(problem: "no app settings (otamesh device config set \(id) …)") }
        if remote != nil, let owner = key.owner {
            let absent = settings.secrets.filter { key.secrets[$0] == nil }.sorted()
            if !absent.isEmpty {
                return ConfigurationOffer(
                    app: settings.app,
                    problem:
                        "its settings come from gateway \(owner), and its \(absent.joined(separator: ", ")) \(absent.count == 1 ? "stays" : "stay") there: set them on this gateway too (otamesh device config set \(id) \(absent[0])=…)"
                )
            }
        }
        let catalog: AppCatalog
        do { catalog = try appCatalog() } catch { return ConfigurationOffer(app: settings.app, problem: "the trusted release cannot be read: \(error)") }
        let hardware = registry.device(id)?.hardware
        guard var release = catalog.release(settings.app, preferring: hardware) else {
            return ConfigurationOffer(app: settings.app, problem: "its settings are for \(settings.app), which the trusted release does not have")
        }
        // The device runs another version of the same app (a rollout installed it): its settings
        // carry over to that version, where they are still valid.
        if let version = key.version, version != release.version, let running = catalog.release(named: release.name, version: version, hardware: hardware) {
            switch SettingsChange.apply([], to: settings, release: running) {
            case .success(let moved):
                release = running
                settings = moved.settings
            case .failure(let problems):
                return ConfigurationOffer(app: running.reference, problem: "its settings for \(settings.app) do not fit \(running.reference): \(problems)")
            }
        }
        let image: ConfigurationImage
        do { image = try ConfigurationImage.build(release, settings: settings, secrets: key.secrets) } catch {
            return ConfigurationOffer(app: release.reference, problem: error.description)
        }
        let sha256 = hexString(SHA256.hash(data: image.bytes))
        let path = "\(directory)/sha256-\(sha256).img"
        do throws(TrustError) {
            if !FileManager.default.fileExists(atPath: path) {
                try FileSystem.makeDirectory(directory, mode: 0o700)
                try FileSystem.write(path, image.bytes, mode: 0o600)
            }
        } catch {
            return ConfigurationOffer(app: release.reference, problem: "cannot keep its image: \(error)")
        }
        let md5 = hexString(Insecure.MD5.hash(data: image.bytes))
        return ConfigurationOffer(
            app: release.reference, configID: image.configID, blob: ServedBlob(sha256: sha256, size: Int64(image.bytes.count), addedAt: 0), md5: md5,
            holdsSecret: image.holdsSecret, address: settings.address)
    }
}
