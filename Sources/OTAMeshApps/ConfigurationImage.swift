import Crypto
import OTAMeshFirmware

/// A device's configuration as its firmware mounts it: the app's filesystem image holding the
/// configuration file, built on the gateway with exactly the parameters of the app's build.
/// Deterministic: the same app version, settings and secrets give the same bytes (and so the
/// same SHA-256 in the store). Pure.
public struct ConfigurationImage: Sendable, Equatable {
    /// `cfg-` and 16 hex digits: names this configuration (the file carries it as `config-id`),
    /// so a device reports what it mounted and the gateway answers 304 when it is current.
    public var configID: String
    /// The configuration file (``ConfigLocation/path``), `config-id` included.
    public var file: [UInt8]
    /// The filesystem image.
    public var bytes: [UInt8]
    /// Whether a password value is inside (served only to the device, see trust.md).
    public var holdsSecret: Bool

    /// The key the configuration file names itself with (reserved: no property may use it).
    public static let idKey = "config-id"

    /// Builds the image; fails when the app takes no filesystem, when a required property has
    /// no value, or when the file does not fit the filesystem.
    public static func build(_ release: AppRelease, settings: DeviceSettings, secrets: [String: String]) throws(ConfigurationImageError) -> ConfigurationImage {
        guard let filesystem = release.filesystem else { throw .noFilesystem(app: release.reference) }
        let missing = settings.missing(release).filter { secrets[$0] == nil }
        guard missing.isEmpty else { throw .missing(app: release.reference, props: missing) }
        let content = ConfigurationFile.bytes(release, settings: settings, secrets: secrets)
        var hasher = SHA256()
        hasher.update(data: Array("\(release.reference)\n\(filesystem.kind.rawValue)\n".utf8))
        hasher.update(data: content)
        let configID = "cfg-" + hasher.finalize().prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let file = ConfigurationFile.bytes(release, settings: settings, secrets: secrets, configID: configID)
        let bytes: [UInt8]
        do {
            bytes = try Self.filesystemImage(filesystem, files: [(release.config.path, file)])
        } catch {
            throw .filesystem(app: release.reference, error)
        }
        let holdsSecret = release.properties.contains { $0.isSecret && secrets[$0.prop] != nil }
        return ConfigurationImage(configID: configID, file: file, bytes: bytes, holdsSecret: holdsSecret)
    }

    /// The filesystem image of `files` with the app build's parameters.
    public static func filesystemImage(_ spec: FilesystemSpec, files: [(path: String, contents: [UInt8])]) throws(FilesystemImageError) -> [UInt8] {
        switch spec.kind {
        case .spiffs:
            return try SPIFFSImage.build(files: files, parameters: spec.spiffs)
        case .littlefs:
            // LittleFS names are relative to its root (`LittleFS.open("/config.json")` finds `config.json`).
            let relative = files.map { (path: String($0.path.drop { $0 == "/" }), contents: $0.contents) }
            return try LittleFSImage.build(files: relative, parameters: spec.littlefs)
        }
    }

    /// Reads the files of an image built with the app's parameters (devicesim, tests).
    public static func files(_ image: [UInt8], spec: FilesystemSpec) throws(FilesystemImageError) -> [(path: String, contents: [UInt8])] {
        switch spec.kind {
        case .spiffs: return try SPIFFSImage.read(image, parameters: spec.spiffs)
        case .littlefs: return try LittleFSImage.read(image, parameters: spec.littlefs)
        }
    }
}

extension FilesystemSpec {
    /// spiffsgen's parameters for this spec.
    public var spiffs: SPIFFSParameters {
        SPIFFSParameters(
            imageSize: size, pageSize: pageSize, blockSize: blockSize, objectNameLength: nameLength, metaLength: metaLength, useMagic: useMagic,
            useMagicLength: useMagicLength, alignedObjectIndexTables: alignedObjectIndexTables)
    }

    /// LittleFS's parameters for this spec.
    public var littlefs: LittleFSParameters {
        LittleFSParameters(blockSize: blockSize, blockCount: size / max(1, blockSize), nameMax: nameLength)
    }
}

/// Why a configuration image cannot be built: one line naming the app version.
public enum ConfigurationImageError: Error, Sendable, Equatable, CustomStringConvertible {
    case noFilesystem(app: String)
    case missing(app: String, props: [String])
    case filesystem(app: String, FilesystemImageError)

    public var description: String {
        switch self {
        case .noFilesystem(let app): "\(app) declares no filesystem: its firmware takes no configuration image"
        case .missing(let app, let props): "\(app): required \(props.joined(separator: ", ")) not set (otamesh device config set ID \(props[0])=…)"
        case .filesystem(let app, let error): "\(app): \(error)"
        }
    }
}
