/// SPIFFS images as ESP-IDF's `components/spiffs/spiffsgen.py` builds them, and a reader
/// for those images.
///
/// An image is `imageSize / blockSize` blocks. Each block starts with lookup pages (one 16-bit
/// object id per later page of the block, the index flag 0x8000 set for index pages, and the
/// block's magic near the end) followed by object pages. A file is an object: index pages (the
/// first carries size, type, name and metadata) that list the absolute page numbers of its data
/// pages, which carry the file's bytes after a 5-byte header. Unused bytes are erased (0xFF).
public enum SPIFFSImage {
    static let filesystem = "SPIFFS"

    /// Builds an image holding `files`, byte for byte what spiffsgen.py builds with the same
    /// parameters when it adds the same files in the same order.
    ///
    /// Files are stored in the order given and get object ids 1, 2, …. spiffsgen adds a
    /// directory's files in `os.walk` order (each directory's files, then its subdirectories'),
    /// which is the filesystem's listing order; to reproduce its image, pass that order.
    ///
    /// A path is stored with one leading "/" (spiffsgen's `'/' + relpath`), so `www/index.html`
    /// and `/www/index.html` are the same file. The stored name must be at most
    /// `objectNameLength - 1` bytes, as in spiffsgen since its off-by-one fix and as the SPIFFS
    /// library requires to open it.
    public static func build(
        files: [(path: String, contents: [UInt8])],
        parameters: SPIFFSParameters
    ) throws(FilesystemImageError) -> [UInt8] {
        let geometry = SPIFFSGeometry(try parameters.validated())
        let names = try storedNames(files.map(\.path), geometry: geometry)
        var layout = SPIFFSLayout(geometry: geometry)
        for (number, file) in files.enumerated() {
            layout.add(objectID: UInt16(number + 1), name: names[number], size: file.contents.count, file: number)
        }
        guard layout.blocksUsed <= geometry.blockCount else {
            throw .doesNotFit(
                filesystem: filesystem,
                needed: layout.blocksUsed * parameters.blockSize,
                available: parameters.imageSize,
                detail: "the files take \(layout.blocksUsed) blocks of \(parameters.blockSize) bytes, the image has \(geometry.blockCount)"
            )
        }
        return layout.render(files.map(\.contents))
    }

    /// The names spiffsgen would store, or the first path that cannot be stored.
    static func storedNames(_ paths: [String], geometry: SPIFFSGeometry) throws(FilesystemImageError) -> [[UInt8]] {
        let limit = geometry.parameters.objectNameLength - 1
        var seen = Set<[UInt8]>()
        var names: [[UInt8]] = []
        for (number, path) in paths.enumerated() {
            func invalid(_ reason: String) -> FilesystemImageError {
                .invalidPath(filesystem: filesystem, path: path, reason: reason)
            }
            if number + 1 > SPIFFSGeometry.maxObjectID {
                throw invalid("file \(number + 1): SPIFFS object ids allow at most \(SPIFFSGeometry.maxObjectID) files")
            }
            let name = path.hasPrefix("/") ? Array(path.utf8) : [UInt8(ascii: "/")] + Array(path.utf8)
            guard name.count > 1 else { throw invalid("name is empty") }
            guard !name.contains(0) else { throw invalid("name contains a NUL byte") }
            guard name.count <= limit else {
                throw invalid("name is \(name.count) bytes, obj-name-len \(limit + 1) allows \(limit)")
            }
            guard seen.insert(name).inserted else { throw invalid("is given twice") }
            names.append(name)
        }
        return names
    }
}

/// Where spiffsgen puts each page, computed the way its `SpiffsFS.create_file` fills blocks:
/// an object's index page, then its data pages, a new index page when the current one's table
/// is full, a new block when the current one has no free page. Blocks past the image's last
/// are counted but not recorded, so a build that does not fit can say how much it needs.
struct SPIFFSLayout {
    enum Page {
        /// An index page: position in `indexPages`.
        case index(Int)
        /// A data page: which file, which span, and the object's id.
        case data(objectID: UInt16, span: Int, file: Int)
    }

    struct IndexPage {
        let objectID: UInt16
        let span: Int
        let size: Int
        let name: [UInt8]
        /// Absolute page numbers of the data pages it lists.
        var dataPages: [Int] = []
    }

    let geometry: SPIFFSGeometry
    /// Object pages of each recorded block, in page order after its lookup pages.
    private(set) var blocks: [[Page]] = []
    private(set) var indexPages: [IndexPage] = []
    private(set) var blocksUsed = 0
    private var pagesInLastBlock = 0
    private var tableEntries = 0
    private var tableLimit = 0

    init(geometry: SPIFFSGeometry) { self.geometry = geometry }

    private var recording: Bool { blocksUsed <= geometry.blockCount }
    private var lastBlockFull: Bool { blocksUsed == 0 || pagesInLastBlock == geometry.usablePagesPerBlock }

    mutating func add(objectID: UInt16, name: [UInt8], size: Int, file: Int) {
        let dataPages = geometry.pageCounts(size: size).data
        var indexSpan = 0
        openIndexPage(objectID: objectID, span: indexSpan, size: size, name: name)
        indexSpan += 1
        var span = 0
        while span < dataPages {
            if lastBlockFull {
                newBlock()
            } else if tableEntries == tableLimit {
                openIndexPage(objectID: objectID, span: indexSpan, size: size, name: name)
                indexSpan += 1
            } else {
                let page = (blocksUsed - 1) * geometry.pagesPerBlock + geometry.lookupPagesPerBlock + pagesInLastBlock
                place(.data(objectID: objectID, span: span, file: file))
                if recording { indexPages[indexPages.count - 1].dataPages.append(page) }
                tableEntries += 1
                span += 1
            }
        }
    }

    private mutating func openIndexPage(objectID: UInt16, span: Int, size: Int, name: [UInt8]) {
        if lastBlockFull { newBlock() }
        if recording {
            indexPages.append(IndexPage(objectID: objectID, span: span, size: size, name: span == 0 ? name : []))
        }
        place(.index(indexPages.count - 1))
        tableEntries = 0
        tableLimit = span == 0 ? geometry.headerIndexEntries : geometry.indexEntries
    }

    private mutating func newBlock() {
        blocksUsed += 1
        pagesInLastBlock = 0
        if recording { blocks.append([]) }
    }

    private mutating func place(_ page: Page) {
        if recording { blocks[blocks.count - 1].append(page) }
        pagesInLastBlock += 1
    }

    /// The image bytes; only called when every block was recorded.
    func render(_ contents: [[UInt8]]) -> [UInt8] {
        let g = geometry
        let p = g.parameters
        var image = [UInt8](repeating: 0xFF, count: p.imageSize)
        for (block, pages) in blocks.enumerated() {
            let blockStart = block * p.blockSize
            for (slot, page) in pages.enumerated() {
                let entry = blockStart + 2 * slot
                let start = blockStart + (g.lookupPagesPerBlock + slot) * p.pageSize
                switch page {
                case let .index(number):
                    let index = indexPages[number]
                    g.put16(index.objectID | SPIFFSGeometry.indexFlag, into: &image, at: entry)
                    renderIndexPage(index, at: start, into: &image)
                case let .data(objectID, span, file):
                    g.put16(objectID, into: &image, at: entry)
                    g.put16(objectID, into: &image, at: start)
                    g.put16(UInt16(span), into: &image, at: start + 2)
                    image[start + 4] = SPIFFSGeometry.flagsData
                    let bytes = contents[file]
                    let from = span * g.dataContentLength
                    let to = min(bytes.count, from + g.dataContentLength)
                    image.replaceSubrange((start + 5)..<(start + 5 + to - from), with: bytes[from..<to])
                }
            }
        }
        if p.useMagic {
            // spiffsgen writes the magic into every block, used or not, unless the block's
            // own lookup entries reach the magic's slot.
            for block in 0..<g.blockCount {
                let used = block < blocks.count ? blocks[block].count : 0
                if used <= g.magicSlot {
                    g.put16(g.magic(block: block), into: &image, at: block * p.blockSize + 2 * g.magicSlot)
                }
            }
        }
        return image
    }

    private func renderIndexPage(_ index: IndexPage, at start: Int, into image: inout [UInt8]) {
        let g = geometry
        g.put16(index.objectID | SPIFFSGeometry.indexFlag, into: &image, at: start)
        g.put16(UInt16(index.span), into: &image, at: start + 2)
        image[start + 4] = SPIFFSGeometry.flagsIndex
        var table = start + SPIFFSGeometry.pageHeaderLengthAligned
        if index.span == 0 {
            g.put32(UInt32(index.size), into: &image, at: table)
            image[table + 4] = SPIFFSGeometry.objectTypeFile
            let nameStart = table + 5
            // Name, then zeros through the metadata and alignment padding.
            for offset in nameStart..<(start + g.indexHeaderLength) { image[offset] = 0 }
            image.replaceSubrange(nameStart..<(nameStart + index.name.count), with: index.name)
            table = start + g.indexHeaderLength
        }
        for page in index.dataPages {
            g.put16(UInt16(page), into: &image, at: table)
            table += 2
        }
    }
}
