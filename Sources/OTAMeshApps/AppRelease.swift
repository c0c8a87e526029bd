import OTAMeshTrust

/// One version of an app: the firmware target it installs and how that firmware is configured —
/// its properties, where the configuration file lives, and the filesystem its build mounts.
/// Carried in the firmware target's signed custom metadata as `custom.app`, so the release's
/// signing, delegation and freshness cover it (apps.md, "The catalog").
public struct AppRelease: Sendable, Equatable {
    public var name: String
    public var description: String
    /// The app version: the firmware target's `version`.
    public var version: String
    /// The firmware target's path.
    public var firmware: String
    /// The device type: the firmware target's `hardware`.
    public var hardware: String
    public var properties: [AppProperty]
    public var config: ConfigLocation
    /// The filesystem the build mounts, where the configuration goes; nil when the app takes none.
    public var filesystem: FilesystemSpec?
    /// Other flash parts for a first flash by serial (bootloader, partition table, …).
    public var parts: [FlashPartSpec]
    /// Where the app itself is written on a first flash by serial.
    public var appOffset: Int

    public init(
        name: String, description: String = "", version: String, firmware: String, hardware: String, properties: [AppProperty] = [],
        config: ConfigLocation = ConfigLocation(), filesystem: FilesystemSpec? = nil, parts: [FlashPartSpec] = [], appOffset: Int = 0x10000
    ) {
        self.name = name
        self.description = description
        self.version = version
        self.firmware = firmware
        self.hardware = hardware
        self.properties = properties
        self.config = config
        self.filesystem = filesystem
        self.parts = parts
        self.appOffset = appOffset
    }

    public func property(_ prop: String) -> AppProperty? { properties.first { $0.prop == prop } }

    /// `name@version`, as commands name an app version.
    public var reference: String { "\(name)@\(version)" }
}

/// Where the configuration file lives inside the filesystem, and how it is written.
public struct ConfigLocation: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable {
        /// One JSON object, keys sorted, values typed (the default).
        case json
        /// `prop=value` lines, sorted by prop (for firmware that parses no JSON).
        case keyValue = "key-value"
    }

    public var path: String
    public var format: Format

    public init(path: String = "/config.json", format: Format = .json) {
        self.path = path
        self.format = format
    }
}

/// The filesystem parameters of an app's build: exactly what its firmware mounts, so the image
/// built on the gateway is the one the device reads.
public struct FilesystemSpec: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case spiffs, littlefs
    }

    public var kind: Kind
    /// Flash offset of the filesystem partition (serial flashing, merged images).
    public var offset: Int
    /// Partition size in bytes: the image's size.
    public var size: Int
    /// SPIFFS: logical page size; LittleFS: unused.
    public var pageSize: Int
    /// SPIFFS: logical block size; LittleFS: block size.
    public var blockSize: Int
    /// SPIFFS `obj-name-len` (including the terminating zero); LittleFS `name-max` (the
    /// firmware's `LFS_NAME_MAX`). Default 32 for both.
    public var nameLength: Int
    /// SPIFFS `meta-len`.
    public var metaLength: Int
    public var useMagic: Bool
    public var useMagicLength: Bool
    public var alignedObjectIndexTables: Bool

    public init(
        kind: Kind, offset: Int, size: Int, pageSize: Int = 256, blockSize: Int = 4096, nameLength: Int? = nil, metaLength: Int = 4,
        useMagic: Bool = true, useMagicLength: Bool = true, alignedObjectIndexTables: Bool = false
    ) {
        self.kind = kind
        self.offset = offset
        self.size = size
        self.pageSize = pageSize
        self.blockSize = blockSize
        // LittleFS: a device refuses an image recording a larger name_max than its own
        // LFS_NAME_MAX (ESP8266 Arduino 32, ESP-IDF esp_littlefs 64), so the default is the smallest.
        self.nameLength = nameLength ?? 32
        self.metaLength = metaLength
        self.useMagic = useMagic
        self.useMagicLength = useMagicLength
        self.alignedObjectIndexTables = alignedObjectIndexTables
    }
}

/// A flash part written with the app on a first flash by serial: a signed target at an offset.
public struct FlashPartSpec: Sendable, Equatable {
    public var name: String
    public var target: String
    public var offset: Int

    public init(name: String, target: String, offset: Int) {
        self.name = name
        self.target = target
        self.offset = offset
    }
}
