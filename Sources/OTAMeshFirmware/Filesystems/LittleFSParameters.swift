/// The geometry and limits of a LittleFS (on-disk format v2) image: what `lfs_config` says about
/// the flash the image is for, and what the superblock records.
///
/// `blockSize` and `blockCount` must equal the device's `lfs_config` (littlefs refuses to mount
/// otherwise). `nameMax`, `fileMax` and `attrMax` are written to the superblock; a device whose
/// build allows less (e.g. `LFS_NAME_MAX` 64 on ESP-IDF) refuses to mount an image that records
/// more, so set `nameMax` to the device's limit.
public struct LittleFSParameters: Sendable, Equatable, Codable {
    /// Erase-block size in bytes (`lfs_config.block_size`).
    public var blockSize: Int
    /// Number of blocks (`lfs_config.block_count`); the image is `blockSize × blockCount` bytes.
    public var blockCount: Int
    /// Longest file or directory name in bytes, recorded in the superblock (littlefs: 255).
    public var nameMax: Int
    /// Largest file in bytes, recorded in the superblock (littlefs: 2 147 483 647).
    public var fileMax: Int
    /// Largest custom attribute in bytes, recorded in the superblock (littlefs: 1022).
    public var attrMax: Int
    /// Files of at most this many bytes are stored inline in their directory's metadata; larger
    /// ones get a CTZ skip-list of blocks. `nil` uses littlefs's default for a device whose cache
    /// is a whole block (as littlefs-python, mklittlefs and most ports configure it):
    /// `min(blockSize / 8, attrMax)`. A device with a smaller cache reads such files correctly
    /// (it reloads its cache) and moves them out of line when it rewrites them.
    public var inlineMax: Int?
    /// On-disk version written to the superblock: `0x0002_0000` (v2.0, the default, which every
    /// littlefs 2.x mounts; a 2.1 driver upgrades it on its first write) or `0x0002_0001`.
    public var diskVersion: UInt32

    /// The largest image this builder makes or reads, so no parameter allocates absurdly.
    public static let maxImageSize = 64 << 20
    static let filesystem = "LittleFS"

    public init(
        blockSize: Int = 4096, blockCount: Int, nameMax: Int = 255, fileMax: Int = 2_147_483_647,
        attrMax: Int = 1022, inlineMax: Int? = nil, diskVersion: UInt32 = 0x0002_0000
    ) {
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.nameMax = nameMax
        self.fileMax = fileMax
        self.attrMax = attrMax
        self.inlineMax = inlineMax
        self.diskVersion = diskVersion
    }

    /// Decodes with the same defaults as ``init(blockSize:blockCount:nameMax:fileMax:attrMax:inlineMax:diskVersion:)``.
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            blockSize: try values.decodeIfPresent(Int.self, forKey: .blockSize) ?? 4096,
            blockCount: try values.decode(Int.self, forKey: .blockCount),
            nameMax: try values.decodeIfPresent(Int.self, forKey: .nameMax) ?? 255,
            fileMax: try values.decodeIfPresent(Int.self, forKey: .fileMax) ?? 2_147_483_647,
            attrMax: try values.decodeIfPresent(Int.self, forKey: .attrMax) ?? 1022,
            inlineMax: try values.decodeIfPresent(Int.self, forKey: .inlineMax),
            diskVersion: try values.decodeIfPresent(UInt32.self, forKey: .diskVersion) ?? 0x0002_0000)
    }

    /// The inline-file limit in effect (see ``inlineMax``).
    var inlineLimit: Int { inlineMax ?? Swift.min(blockSize / 8, attrMax) }

    /// The image size in bytes.
    var imageBytes: Int { blockSize * blockCount }

    /// `self`, or the first parameter littlefs would reject (or that would make an absurd image).
    public func validated() throws(FilesystemImageError) -> LittleFSParameters {
        func invalid(_ parameter: String, _ value: some CustomStringConvertible, _ reason: String) -> FilesystemImageError {
            .invalidParameter(filesystem: Self.filesystem, parameter: parameter, value: value.description, reason: reason)
        }
        // littlefs asserts block_size >= 128 so every CTZ pointer of a 4 GiB file fits a block;
        // a multiple of 4 keeps those pointers word-aligned.
        guard blockSize >= 128, blockSize % 4 == 0 else {
            throw invalid("block-size", blockSize, "must be at least 128 and a multiple of 4")
        }
        guard blockSize <= Self.maxImageSize / 2 else {
            throw invalid("block-size", blockSize, "two blocks exceed the \(Self.maxImageSize)-byte image limit")
        }
        guard blockCount >= 2 else {
            throw invalid("block-count", blockCount, "must be at least 2 (the superblock pair)")
        }
        guard blockCount <= Self.maxImageSize / blockSize else {
            throw invalid(
                "block-count", blockCount,
                "\(blockCount) blocks of \(blockSize) bytes exceed the \(Self.maxImageSize)-byte image limit")
        }
        guard (1...1022).contains(nameMax) else {
            throw invalid("name-max", nameMax, "must be 1...1022 (a tag's length field)")
        }
        guard (1...2_147_483_647).contains(fileMax) else {
            throw invalid("file-max", fileMax, "must be 1...2147483647 (LFS_FILE_MAX)")
        }
        guard (1...1022).contains(attrMax) else {
            throw invalid("attr-max", attrMax, "must be 1...1022 (LFS_ATTR_MAX)")
        }
        if let inlineMax, !(0...Swift.min(blockSize / 8, attrMax)).contains(inlineMax) {
            throw invalid(
                "inline-max", inlineMax,
                "must be 0...\(Swift.min(blockSize / 8, attrMax)) (littlefs: at most block-size/8 and attr-max)")
        }
        guard diskVersion == 0x0002_0000 || diskVersion == 0x0002_0001 else {
            throw invalid("disk-version", "0x" + String(diskVersion, radix: 16), "must be 0x20000 (v2.0) or 0x20001 (v2.1)")
        }
        return self
    }
}
