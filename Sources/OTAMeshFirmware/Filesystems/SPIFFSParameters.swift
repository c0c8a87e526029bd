/// How a SPIFFS image is laid out: the options of ESP-IDF's `spiffsgen.py`, which must match
/// the firmware's SPIFFS configuration (`CONFIG_SPIFFS_*`) for the device to mount the image.
///
/// Defaults are spiffsgen's (and ESP-IDF's): 256-byte pages, 4 KiB blocks, 32-byte names,
/// 4 bytes of metadata, magic numbers with the length folded in, little-endian.
public struct SPIFFSParameters: Sendable, Equatable, Codable {
    /// Logical page size in bytes (`--page-size`, `CONFIG_SPIFFS_PAGE_SIZE`).
    public var pageSize: Int
    /// Logical block size in bytes, the flash erase size (`--block-size`).
    public var blockSize: Int
    /// Bytes reserved for a file's name, including its terminating NUL
    /// (`--obj-name-len`, `CONFIG_SPIFFS_OBJ_NAME_LEN`).
    public var objectNameLength: Int
    /// Bytes of per-file metadata after the name (`--meta-len`, `CONFIG_SPIFFS_META_LENGTH`).
    public var metaLength: Int
    /// Each block carries a magic number (`--use-magic`, `CONFIG_SPIFFS_USE_MAGIC`).
    public var useMagic: Bool
    /// The magic number also encodes the block's distance from the end
    /// (`--use-magic-len`, `CONFIG_SPIFFS_USE_MAGIC_LENGTH`).
    public var useMagicLength: Bool
    /// The page table of an object's first index page starts on an even offset
    /// (`--aligned-obj-ix-tables`, `SPIFFS_ALIGNED_OBJECT_INDEX_TABLES`, set by ESP8266 Arduino).
    public var alignedObjectIndexTables: Bool
    /// Multi-byte fields are big-endian (`--big-endian`).
    public var bigEndian: Bool
    /// Size of the whole image, the SPIFFS partition's size.
    public var imageSize: Int

    /// Largest image accepted, so no parameters can make a build allocate absurdly.
    public static let maxImageSize = 64 << 20

    public init(
        imageSize: Int,
        pageSize: Int = 256,
        blockSize: Int = 4096,
        objectNameLength: Int = 32,
        metaLength: Int = 4,
        useMagic: Bool = true,
        useMagicLength: Bool = true,
        alignedObjectIndexTables: Bool = false,
        bigEndian: Bool = false
    ) {
        self.imageSize = imageSize
        self.pageSize = pageSize
        self.blockSize = blockSize
        self.objectNameLength = objectNameLength
        self.metaLength = metaLength
        self.useMagic = useMagic
        self.useMagicLength = useMagicLength
        self.alignedObjectIndexTables = alignedObjectIndexTables
        self.bigEndian = bigEndian
    }

    /// Decodes with spiffsgen's defaults for every key but `imageSize`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SPIFFSParameters(imageSize: 0)
        self.init(
            imageSize: try c.decode(Int.self, forKey: .imageSize),
            pageSize: try c.decodeIfPresent(Int.self, forKey: .pageSize) ?? d.pageSize,
            blockSize: try c.decodeIfPresent(Int.self, forKey: .blockSize) ?? d.blockSize,
            objectNameLength: try c.decodeIfPresent(Int.self, forKey: .objectNameLength) ?? d.objectNameLength,
            metaLength: try c.decodeIfPresent(Int.self, forKey: .metaLength) ?? d.metaLength,
            useMagic: try c.decodeIfPresent(Bool.self, forKey: .useMagic) ?? d.useMagic,
            useMagicLength: try c.decodeIfPresent(Bool.self, forKey: .useMagicLength) ?? d.useMagicLength,
            alignedObjectIndexTables: try c.decodeIfPresent(Bool.self, forKey: .alignedObjectIndexTables)
                ?? d.alignedObjectIndexTables,
            bigEndian: try c.decodeIfPresent(Bool.self, forKey: .bigEndian) ?? d.bigEndian
        )
    }

    /// Returns these parameters if an image can be laid out with them, or names the first
    /// parameter that is out of range: spiffsgen's own checks (block a multiple of page, image
    /// a multiple of block) plus the limits of SPIFFS's 16-bit page indexes and sanity bounds.
    public func validated() throws(FilesystemImageError) -> SPIFFSParameters {
        func invalid(_ parameter: String, _ value: Int, _ reason: String) -> FilesystemImageError {
            .invalidParameter(filesystem: "SPIFFS", parameter: parameter, value: String(value), reason: reason)
        }
        guard Self.isPowerOfTwo(pageSize), (64...32768).contains(pageSize) else {
            throw invalid("page-size", pageSize, "must be a power of two from 64 to 32768")
        }
        guard Self.isPowerOfTwo(blockSize), blockSize <= Self.maxImageSize else {
            throw invalid("block-size", blockSize, "must be a power of two of at most \(Self.maxImageSize)")
        }
        guard blockSize >= 2 * pageSize else {
            throw invalid("block-size", blockSize, "must hold at least two \(pageSize)-byte pages: a lookup page and one for files")
        }
        guard imageSize > 0, imageSize <= Self.maxImageSize else {
            throw invalid("image-size", imageSize, "must be from 1 to \(Self.maxImageSize) bytes")
        }
        guard imageSize % blockSize == 0 else {
            throw invalid("image-size", imageSize, "must be a multiple of block-size \(blockSize)")
        }
        guard imageSize / pageSize <= 65536 else {
            throw invalid(
                "image-size", imageSize, "is \(imageSize / pageSize) pages of \(pageSize) bytes; SPIFFS page indexes are 16 bits, at most 65536 pages")
        }
        guard (2...pageSize).contains(objectNameLength) else {
            throw invalid("obj-name-len", objectNameLength, "must be from 2 (one character and the NUL) to page-size \(pageSize)")
        }
        guard (0...pageSize).contains(metaLength) else {
            throw invalid("meta-len", metaLength, "must be from 0 to page-size \(pageSize)")
        }
        let header = SPIFFSGeometry.indexHeaderLength(self)
        guard header + SPIFFSGeometry.pageIndexLength <= pageSize else {
            throw invalid(
                "obj-name-len", objectNameLength,
                "with meta-len \(metaLength) a file's first index page needs \(header) header bytes and 2 per data page, more than page-size \(pageSize)")
        }
        return self
    }

    static func isPowerOfTwo(_ value: Int) -> Bool { value > 0 && value & (value - 1) == 0 }
}

/// Sizes derived from valid parameters, named after the fields of spiffsgen's `SpiffsBuildConfig`.
struct SPIFFSGeometry: Sendable {
    /// `spiffs_obj_id`, `spiffs_span_ix`, `spiffs_page_ix` are all 16 bits in ESP-IDF.
    static let pageIndexLength = 2
    /// Object id, span index, flags.
    static let pageHeaderLength = 5
    /// The page header padded to 4 bytes, where an index page's own fields start.
    static let pageHeaderLengthAligned = 8
    static let flagsIndex: UInt8 = 0xF8
    static let flagsData: UInt8 = 0xFC
    static let objectTypeFile: UInt8 = 1
    /// Object id bit marking an index page (in page headers and lookup entries).
    static let indexFlag: UInt16 = 0x8000
    /// Largest object id: 0x7FFF with the index flag reads as an erased lookup entry.
    static let maxObjectID = 0x7FFE

    let parameters: SPIFFSParameters
    let pagesPerBlock: Int
    /// `OBJ_LU_PAGES_PER_BLOCK`: pages at the start of each block holding one lookup entry per page.
    let lookupPagesPerBlock: Int
    let usablePagesPerBlock: Int
    let lookupEntriesPerPage: Int
    let blockCount: Int
    /// `OBJ_DATA_PAGE_CONTENT_LEN`: file bytes per data page.
    let dataContentLength: Int
    /// `OBJ_INDEX_PAGES_HEADER_LEN_ALIGNED`: where the page table of a span-0 index page starts.
    let indexHeaderLength: Int
    /// `OBJ_INDEX_PAGES_OBJ_IDS_HEAD_LIM`: data pages listed by an object's first index page.
    let headerIndexEntries: Int
    /// `OBJ_INDEX_PAGES_OBJ_IDS_LIM`: data pages listed by each later index page.
    let indexEntries: Int

    /// Geometry of parameters that passed ``SPIFFSParameters/validated()``.
    init(_ p: SPIFFSParameters) {
        parameters = p
        pagesPerBlock = p.blockSize / p.pageSize
        lookupPagesPerBlock = (pagesPerBlock * 2 + p.pageSize - 1) / p.pageSize
        usablePagesPerBlock = pagesPerBlock - lookupPagesPerBlock
        lookupEntriesPerPage = p.pageSize / 2
        blockCount = p.imageSize / p.blockSize
        dataContentLength = p.pageSize - Self.pageHeaderLength
        indexHeaderLength = Self.indexHeaderLength(p)
        headerIndexEntries = (p.pageSize - indexHeaderLength) / Self.pageIndexLength
        indexEntries = (p.pageSize - Self.pageHeaderLengthAligned) / Self.pageIndexLength
    }

    /// Header of an object's first index page: page header, size, type, name, metadata,
    /// rounded up to even when index tables are aligned.
    static func indexHeaderLength(_ p: SPIFFSParameters) -> Int {
        let length = pageHeaderLengthAligned + 4 + 1 + p.objectNameLength + p.metaLength
        return p.alignedObjectIndexTables ? (length + 1) & ~1 : length
    }

    /// Lookup entry slot (counted from the block's start) that holds the block's magic:
    /// the second-to-last entry of the last lookup page; the last is the erase count.
    var magicSlot: Int { lookupPagesPerBlock * lookupEntriesPerPage - 2 }

    /// `SPIFFS_MAGIC`: 0x20140529 ^ page size [^ (block count - block)], as a 16-bit object id.
    func magic(block: Int) -> UInt16 {
        var value = 0x2014_0529 ^ parameters.pageSize
        if parameters.useMagicLength { value ^= blockCount - block }
        return UInt16(truncatingIfNeeded: value)
    }

    /// Data pages and index pages a file of `size` bytes takes.
    func pageCounts(size: Int) -> (data: Int, index: Int) {
        let data = (size + dataContentLength - 1) / dataContentLength
        let later = max(0, data - headerIndexEntries)
        return (data, 1 + (later + indexEntries - 1) / indexEntries)
    }

    /// Which index page (by span) lists data page `span`, and at which byte of that page.
    func indexLocation(ofDataSpan span: Int) -> (indexSpan: Int, offset: Int) {
        if span < headerIndexEntries { return (0, indexHeaderLength + 2 * span) }
        let later = span - headerIndexEntries
        return (1 + later / indexEntries, Self.pageHeaderLengthAligned + 2 * (later % indexEntries))
    }

    func put16(_ value: UInt16, into image: inout [UInt8], at offset: Int) {
        let (first, second) = parameters.bigEndian ? (value >> 8, value) : (value, value >> 8)
        image[offset] = UInt8(truncatingIfNeeded: first)
        image[offset + 1] = UInt8(truncatingIfNeeded: second)
    }

    func put32(_ value: UInt32, into image: inout [UInt8], at offset: Int) {
        put16(UInt16(truncatingIfNeeded: parameters.bigEndian ? value >> 16 : value), into: &image, at: offset)
        put16(UInt16(truncatingIfNeeded: parameters.bigEndian ? value : value >> 16), into: &image, at: offset + 2)
    }

    /// A 16-bit field; the caller has checked `offset + 2 <= image.count`.
    func read16(_ image: [UInt8], at offset: Int) -> UInt16 {
        let (a, b) = (UInt16(image[offset]), UInt16(image[offset + 1]))
        return parameters.bigEndian ? a << 8 | b : b << 8 | a
    }

    /// A 32-bit field; the caller has checked `offset + 4 <= image.count`.
    func read32(_ image: [UInt8], at offset: Int) -> UInt32 {
        let (a, b) = (UInt32(read16(image, at: offset)), UInt32(read16(image, at: offset + 2)))
        return parameters.bigEndian ? a << 16 | b : b << 16 | a
    }
}
