extension SPIFFSImage {
    /// Reads the files of an image built by ``build(files:parameters:)`` or by spiffsgen.py with
    /// the same parameters, in object id order (the order they were added), paths as stored
    /// (with their leading "/").
    ///
    /// Every page in use must belong to a complete file: lookup entries agree with page headers,
    /// each block's magic is right (when the parameters use magic), every data page a file's
    /// size needs is present and listed by its index. Anything else throws
    /// ``FilesystemImageError/malformedImage(filesystem:offset:reason:)``; work and memory are
    /// bounded by the image size, whatever the bytes.
    public static func read(
        _ image: [UInt8],
        parameters: SPIFFSParameters
    ) throws(FilesystemImageError) -> [(path: String, contents: [UInt8])] {
        let geometry = SPIFFSGeometry(try parameters.validated())
        guard image.count == parameters.imageSize else {
            throw malformed(min(image.count, parameters.imageSize), "the image is \(image.count) bytes, image-size is \(parameters.imageSize)")
        }
        let pages = try SPIFFSPageScan(image, geometry: geometry)
        var files: [(path: String, contents: [UInt8])] = []
        var names = Set<String>()
        for objectID in pages.objectIDs {
            let file = try pages.file(objectID)
            guard names.insert(file.path).inserted else {
                throw malformed(pages.headerOffset(objectID) ?? 0, "a second file named \(file.path.debugDescription)")
            }
            files.append(file)
        }
        return files
    }

    static func malformed(_ offset: Int, _ reason: String) -> FilesystemImageError {
        .malformedImage(filesystem: filesystem, offset: offset, reason: reason)
    }
}

/// The pages in use of an image, found from their headers and checked against the lookup
/// entries and magic numbers of their blocks.
struct SPIFFSPageScan {
    let image: [UInt8]
    let geometry: SPIFFSGeometry
    /// Page number of each index page and each data page, by ``key(_:_:)``.
    private(set) var indexPages: [UInt32: Int] = [:]
    private(set) var dataPages: [UInt32: Int] = [:]

    static func key(_ objectID: UInt16, _ span: Int) -> UInt32 { UInt32(objectID) << 16 | UInt32(span) }

    init(_ image: [UInt8], geometry g: SPIFFSGeometry) throws(FilesystemImageError) {
        self.image = image
        self.geometry = g
        let pageSize = g.parameters.pageSize
        for block in 0..<g.blockCount {
            let blockStart = block * g.parameters.blockSize
            if g.parameters.useMagic, g.magicSlot >= g.usablePagesPerBlock {
                let found = g.read16(image, at: blockStart + 2 * g.magicSlot)
                let expected = g.magic(block: block)
                guard found == expected else {
                    throw SPIFFSImage.malformed(
                        blockStart + 2 * g.magicSlot,
                        "block \(block) magic is 0x\(Self.hex(found)), 0x\(Self.hex(expected)) expected: not SPIFFS, or other page-size, block-size, image-size or magic options"
                    )
                }
            }
            for slot in 0..<g.usablePagesPerBlock {
                let page = block * g.pagesPerBlock + g.lookupPagesPerBlock + slot
                let start = page * pageSize
                let flags = image[start + 4]
                // Flag bits are cleared to set them: bit 0 used, 1 final, 7 deleted.
                guard flags & 0x01 == 0, flags & 0x02 == 0, flags & 0x80 != 0 else { continue }
                let objectID = g.read16(image, at: start)
                let entry = g.read16(image, at: blockStart + 2 * slot)
                guard entry == objectID else {
                    throw SPIFFSImage.malformed(
                        blockStart + 2 * slot, "lookup entry 0x\(Self.hex(entry)) for page \(page), whose header says object 0x\(Self.hex(objectID))")
                }
                let isIndex = flags & 0x04 == 0
                guard isIndex == (objectID & SPIFFSGeometry.indexFlag != 0) else {
                    throw SPIFFSImage.malformed(
                        start, "page \(page): flags 0x\(String(flags, radix: 16)) and object id 0x\(Self.hex(objectID)) disagree on whether it is an index page"
                    )
                }
                let id = objectID & ~SPIFFSGeometry.indexFlag
                guard id != 0, Int(id) <= SPIFFSGeometry.maxObjectID else {
                    throw SPIFFSImage.malformed(start, "page \(page): object id \(id) is reserved")
                }
                let key = Self.key(id, Int(g.read16(image, at: start + 2)))
                if isIndex {
                    guard indexPages.updateValue(page, forKey: key) == nil else {
                        throw SPIFFSImage.malformed(start, "page \(page): a second index page \(key & 0xFFFF) of object \(id)")
                    }
                } else {
                    guard dataPages.updateValue(page, forKey: key) == nil else {
                        throw SPIFFSImage.malformed(start, "page \(page): a second data page \(key & 0xFFFF) of object \(id)")
                    }
                }
            }
        }
        try checkNoStrayPages()
    }

    /// Object ids that have pages, ascending.
    var objectIDs: [UInt16] {
        Set(indexPages.keys.map { UInt16($0 >> 16) }).union(dataPages.keys.map { UInt16($0 >> 16) }).sorted()
    }

    /// Every page belongs to a span its object's size needs (so ``file(_:)`` uses them all).
    private func checkNoStrayPages() throws(FilesystemImageError) {
        var needed: [UInt16: (data: Int, index: Int)] = [:]
        for id in objectIDs {
            guard let header = headerOffset(id) else {
                let page = pagesOf(id, in: indexPages).first ?? pagesOf(id, in: dataPages).first ?? 0
                throw SPIFFSImage.malformed(page * geometry.parameters.pageSize, "object \(id) has pages but no first index page")
            }
            let fields = header + SPIFFSGeometry.pageHeaderLengthAligned
            let size = Int(geometry.read32(image, at: fields))
            guard size <= geometry.parameters.imageSize else {
                throw SPIFFSImage.malformed(fields, "object \(id) claims \(size) bytes, more than the image")
            }
            needed[id] = geometry.pageCounts(size: size)
        }
        try checkSpans(of: indexPages, kind: "index") { needed[$0]?.index ?? 0 }
        try checkSpans(of: dataPages, kind: "data") { needed[$0]?.data ?? 0 }
    }

    private func checkSpans(of pages: [UInt32: Int], kind: String, needed: (UInt16) -> Int) throws(FilesystemImageError) {
        for (key, page) in pages.sorted(by: { $0.value < $1.value }) {
            let id = UInt16(key >> 16)
            let span = Int(key & 0xFFFF)
            guard span < needed(id) else {
                throw SPIFFSImage.malformed(
                    page * geometry.parameters.pageSize, "page \(page): \(kind) page \(span) of object \(id), whose size needs \(needed(id))")
            }
        }
    }

    private func pagesOf(_ id: UInt16, in pages: [UInt32: Int]) -> [Int] {
        pages.filter { $0.key >> 16 == UInt32(id) }.values.sorted()
    }

    /// Byte offset of an object's first index page.
    func headerOffset(_ id: UInt16) -> Int? {
        indexPages[Self.key(id, 0)].map { $0 * geometry.parameters.pageSize }
    }

    /// The file of an object whose pages ``checkNoStrayPages()`` accepted.
    func file(_ id: UInt16) throws(FilesystemImageError) -> (path: String, contents: [UInt8]) {
        let g = geometry
        let pageSize = g.parameters.pageSize
        guard let start = headerOffset(id) else {
            throw SPIFFSImage.malformed(0, "object \(id) has no first index page")
        }
        let fields = start + SPIFFSGeometry.pageHeaderLengthAligned
        let size = Int(g.read32(image, at: fields))
        guard image[fields + 4] == SPIFFSGeometry.objectTypeFile else {
            throw SPIFFSImage.malformed(fields + 4, "object \(id) has type \(image[fields + 4]), not a file (1)")
        }
        let nameField = image[(fields + 5)..<(fields + 5 + g.parameters.objectNameLength)]
        let nameBytes = nameField.prefix { $0 != 0 }
        guard !nameBytes.isEmpty, let path = String(validating: nameBytes, as: UTF8.self) else {
            throw SPIFFSImage.malformed(fields + 5, "object \(id) has an empty name or one that is not UTF-8")
        }
        var contents: [UInt8] = []
        for span in 0..<g.pageCounts(size: size).data {
            let (indexSpan, offset) = g.indexLocation(ofDataSpan: span)
            guard let indexPage = indexPages[Self.key(id, indexSpan)] else {
                throw SPIFFSImage.malformed(start, "\(path.debugDescription) (\(size) bytes) lacks index page \(indexSpan)")
            }
            guard let dataPage = dataPages[Self.key(id, span)] else {
                throw SPIFFSImage.malformed(start, "\(path.debugDescription) (\(size) bytes) lacks data page \(span)")
            }
            let listed = Int(g.read16(image, at: indexPage * pageSize + offset))
            guard listed == dataPage else {
                throw SPIFFSImage.malformed(
                    indexPage * pageSize + offset, "\(path.debugDescription): index lists page \(listed) for data page \(span), which is page \(dataPage)")
            }
            let from = dataPage * pageSize + SPIFFSGeometry.pageHeaderLength
            let count = min(g.dataContentLength, size - contents.count)
            contents.append(contentsOf: image[from..<(from + count)])
        }
        return (path, contents)
    }

    static func hex(_ value: UInt16) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }
}
