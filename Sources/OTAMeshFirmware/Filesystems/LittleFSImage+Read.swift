extension LittleFSImage {
    /// The regular files in a LittleFS v2 image, sorted by path (UTF-8 bytes); directories
    /// appear only as path prefixes, so empty directories are not listed.
    ///
    /// Reads what ``build(files:parameters:)`` writes and what littlefs itself writes (multiple
    /// commits per block, create/delete tags, split directories, FCRC tags, pending moves). Like
    /// `lfs_mount`, it walks the threaded tail list from blocks 0/1 for the superblock (whose
    /// block size and count must equal `parameters`) and the global move state, then the tree
    /// from the root. Bounded on any input: each metadata pair is visited at most once per
    /// walk, every pointer is checked against the block count, log replay has a step budget,
    /// paths are at most 4096 bytes, and the files with their paths may not claim more than
    /// about twice the image's bytes. Names that are not UTF-8 are decoded lossily.
    public static func read(
        _ image: [UInt8], parameters: LittleFSParameters
    ) throws(FilesystemImageError) -> [(path: String, contents: [UInt8])] {
        let parameters = try parameters.validated()
        let view = LittleFSImageView(bytes: image, blockSize: parameters.blockSize, blockCount: parameters.blockCount)
        guard image.count >= parameters.imageBytes else {
            throw view.malformed(
                image.count,
                "the image is \(image.count) bytes, \(parameters.blockCount) blocks of \(parameters.blockSize) need \(parameters.imageBytes)")
        }
        var reader = LittleFSReader(view: view)
        let root = try reader.mount()
        return try reader.files(root: root).sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }
}

/// The walks `LittleFSImage.read` makes.
struct LittleFSReader {
    let view: LittleFSImageView
    /// Replay steps taken so far (see ``LittleFSMetadataPair/init(_:in:work:)``).
    private var work = 0
    /// The XOR of every pair's move-state delta: tag and pair of an interrupted move.
    private var globalMove: [UInt32] = [0, 0, 0]
    /// Bytes of paths and contents returned so far, at most ``outputLimit``.
    private var output = 0
    /// A real image's files hold at most the image's bytes, their paths far less.
    var outputLimit: Int { 2 * view.bytes.count + (1 << 20) }
    /// What each returned file costs beyond its bytes, counted against ``outputLimit`` so an
    /// image of millions of empty files is refused.
    static let entryCost = 64

    init(view: LittleFSImageView) { self.view = view }

    /// Pairs are fetched again by the tree walk rather than kept: a hostile image of many
    /// pairs with 1023 ids each would otherwise hold them all.
    private mutating func fetch(_ pair: (UInt32, UInt32)) throws(FilesystemImageError) -> LittleFSMetadataPair {
        try LittleFSMetadataPair(pair, in: view, work: &work)
    }

    /// Follows the tail list from {0, 1} like `lfs_mount`; returns the root directory's pair.
    mutating func mount() throws(FilesystemImageError) -> (UInt32, UInt32) {
        var next: (UInt32, UInt32)? = (0, 1)
        var seen = Set<UInt32>()
        var root: (UInt32, UInt32)?
        while let pair = next, pair != (LittleFSFormat.nullBlock, LittleFSFormat.nullBlock) {
            guard seen.insert(min(pair.0, pair.1)).inserted else {
                throw view.malformed(Int(pair.0) * view.blockSize, "the metadata tail list loops back to {\(pair.0), \(pair.1)}")
            }
            let directory = try fetch(pair)
            if let superblock = directory.entries.first, superblock.type == LittleFSFormat.typeSuperblock,
                superblock.name.elementsEqual(LittleFSFormat.magic)
            {
                try check(superblock, at: directory.blocks.0)
                root = pair
            }
            for word in 0..<3 { globalMove[word] ^= directory.moveDelta[word] }
            next = directory.tail
        }
        guard let root else {
            throw view.malformed(8, "no superblock: no metadata pair on the tail list from blocks 0/1 holds \"littlefs\"")
        }
        return root
    }

    private func check(_ superblock: LittleFSMetadataPair.Entry, at block: UInt32) throws(FilesystemImageError) {
        let offset = Int(block) * view.blockSize
        guard superblock.structType == LittleFSFormat.typeInlineStruct else {
            throw view.malformed(offset, "the superblock entry has no inline struct")
        }
        var data = Array(superblock.structData.prefix(24))
        data += [UInt8](repeating: 0, count: 24 - data.count)
        let fields = LittleFSMetadataPair.words(data[...], count: 3)
        let (major, minor) = (fields[0] >> 16, fields[0] & 0xFFFF)
        guard major == 2, minor <= 1 else {
            throw view.malformed(offset, "on-disk version \(major).\(minor), this reader knows 2.0 and 2.1")
        }
        guard fields[1] == UInt32(view.blockSize), fields[2] == UInt32(view.blockCount) else {
            throw view.malformed(
                offset,
                "the superblock says \(fields[2]) blocks of \(fields[1]) bytes, the parameters \(view.blockCount) of \(view.blockSize)")
        }
    }

    /// Every regular file under the root, depth-first.
    mutating func files(root: (UInt32, UInt32)) throws(FilesystemImageError) -> [(path: String, contents: [UInt8])] {
        var result: [(path: String, contents: [UInt8])] = []
        var pending: [(pair: (UInt32, UInt32), prefix: String)] = [(root, "")]
        var visited = Set<UInt32>()
        while let (head, prefix) = pending.popLast() {
            var next: (UInt32, UInt32)? = head
            while let pair = next {
                guard visited.insert(min(pair.0, pair.1)).inserted else {
                    throw view.malformed(Int(pair.0) * view.blockSize, "metadata pair {\(pair.0), \(pair.1)} is reached twice")
                }
                let directory = try fetch(pair)
                for (id, entry) in directory.entries.enumerated() where !isMoved(id: id, in: directory) {
                    guard entry.type == LittleFSFormat.typeRegular || entry.type == LittleFSFormat.typeDirectory else { continue }
                    let offset = Int(directory.blocks.0) * view.blockSize
                    guard !entry.name.isEmpty, !entry.name.contains(0x2F), !entry.name.contains(0) else {
                        throw view.malformed(offset, "entry \(id) of pair {\(pair.0), \(pair.1)} has an empty name or one with / or NUL")
                    }
                    let path = prefix + String(decoding: entry.name, as: UTF8.self)
                    guard path.utf8.count <= LittleFSFormat.maxPathBytes else {
                        throw view.malformed(offset, "a path in pair {\(pair.0), \(pair.1)} is longer than \(LittleFSFormat.maxPathBytes) bytes")
                    }
                    if entry.type == LittleFSFormat.typeDirectory {
                        guard entry.structType == LittleFSFormat.typeDirStruct, entry.structData.count >= 8 else {
                            throw view.malformed(offset, "directory \(path.debugDescription) has no directory struct")
                        }
                        let words = LittleFSMetadataPair.words(entry.structData, count: 2)
                        pending.append(((words[0], words[1]), path + "/"))
                    } else {
                        let contents = try contents(of: entry, path: path, at: offset)
                        output += path.utf8.count + contents.count + Self.entryCost
                        guard output <= outputLimit else {
                            throw view.malformed(
                                offset, "the files and paths claim more than \(outputLimit) bytes (\(Self.entryCost) per file), about twice the image")
                        }
                        result.append((path, contents))
                    }
                }
                next = directory.continuesDirectory ? directory.tail : nil
            }
        }
        return result
    }

    /// Whether a pending move (power lost mid-rename) has this entry's source, which littlefs
    /// treats as deleted.
    private func isMoved(id: Int, in directory: LittleFSMetadataPair) -> Bool {
        guard (globalMove[0] >> 28) & 0x7 != 0, LittleFSFormat.id(globalMove[0]) == id else { return false }
        let (a, b) = directory.blocks
        return [a, b].contains(globalMove[1]) || [a, b].contains(globalMove[2])
    }

    private func contents(
        of entry: LittleFSMetadataPair.Entry, path: String, at offset: Int
    ) throws(FilesystemImageError) -> [UInt8] {
        switch entry.structType {
        case LittleFSFormat.typeInlineStruct?:
            return Array(entry.structData)
        case LittleFSFormat.typeCTZStruct? where entry.structData.count >= 8:
            let words = LittleFSMetadataPair.words(entry.structData, count: 2)
            let size = Int(words[1])
            guard size <= view.bytes.count, size <= outputLimit - output else {
                throw view.malformed(offset, "\(path.debugDescription) claims \(size) bytes, the image has \(view.bytes.count)")
            }
            return try readSkipList(head: words[0], size: size, path: path, at: offset)
        default:
            throw view.malformed(offset, "file \(path.debugDescription) has no inline or CTZ struct")
        }
    }

    /// A CTZ skip-list's bytes: walks from the head (last block) back to block 0 by each
    /// block's first pointer, then reads the blocks forwards.
    private func readSkipList(head: UInt32, size: Int, path: String, at offset: Int) throws(FilesystemImageError) -> [UInt8] {
        guard size > 0 else { return [] }
        let blockSize = view.blockSize
        let count = LittleFSFormat.ctzBlockCount(size: size, blockSize: blockSize)
        var blocks = [Int](repeating: 0, count: count)
        var block = head
        for index in stride(from: count - 1, through: 0, by: -1) {
            guard Int(block) < view.blockCount, block >= 2 else {
                throw view.malformed(offset, "block \(index) of \(path.debugDescription) is block \(block), not a data block of the \(view.blockCount)")
            }
            blocks[index] = Int(block)
            if index > 0 { block = view.u32(block: Int(block), offset: 0) }
        }
        var contents: [UInt8] = []
        contents.reserveCapacity(size)
        for (index, block) in blocks.enumerated() {
            let start = block * blockSize + 4 * LittleFSFormat.ctzPointerCount(index)
            let length = min(size - contents.count, (block + 1) * blockSize - start)
            contents += view.bytes[start..<(start + length)]
        }
        return contents
    }
}
