/// Where everything of a ``LittleFSTree`` goes in the image: which entries share a metadata
/// pair, each pair's blocks, and each CTZ file's blocks.
struct LittleFSLayout {
    struct Pair {
        var directory: Int
        /// Indices into the directory's entries.
        var entries: Range<Int>
        /// The superblock entry (id 0) heads the first pair of the root.
        var hasSuperblock: Bool
    }

    let parameters: LittleFSParameters
    /// Pairs in pre-order; pair `k` is blocks `2k` (written) and `2k + 1` (erased).
    private(set) var pairs: [Pair] = []
    /// The first pair of each directory.
    private(set) var headPair: [Int] = []
    /// The first block of each CTZ file, by input index.
    private(set) var firstBlock: [Int: Int] = [:]

    /// Entry tags of the superblock: name tag + 8 bytes, inline struct + 24 bytes.
    static let superblockEntryBytes = LittleFSFormat.entryBytes(nameLength: 8, structLength: 24)
    /// littlefs splits a pair before it holds 0xff entries.
    static let maxEntriesPerPair = 0xFE

    init(tree: LittleFSTree, parameters: LittleFSParameters) throws(FilesystemImageError) {
        self.parameters = parameters
        // Bytes of entry tags per pair: littlefs's split rule (lfs_dir_splittingcompact) keeps a
        // compacted pair within half a block and leaves 40 bytes for tail, gstate and CRC tags;
        // one entry larger than half a block gets a pair to itself.
        let blockSize = parameters.blockSize
        let softLimit = min(blockSize - 40, blockSize / 2)
        let hardLimit = blockSize - 40
        for (directory, entries) in tree.directories.enumerated() {
            headPair.append(pairs.count)
            var current = Pair(directory: directory, entries: 0..<0, hasSuperblock: directory == 0)
            var used = directory == 0 ? Self.superblockEntryBytes : 0
            for (index, entry) in entries.enumerated() {
                let bytes = LittleFSFormat.entryBytes(nameLength: entry.name.count, structLength: structLength(of: entry, tree: tree))
                guard bytes <= hardLimit else {
                    let path: String
                    if case .file(let index) = entry.child { path = tree.filePaths[index] } else { path = String(decoding: entry.name, as: UTF8.self) }
                    throw LittleFSTree.pathError(
                        path,
                        "its entry needs \(bytes) bytes of metadata, a \(blockSize)-byte block holds at most \(hardLimit) per pair")
                }
                let count = current.entries.count + (current.hasSuperblock ? 1 : 0)
                if count > 0, used + bytes > softLimit || count + 1 > Self.maxEntriesPerPair {
                    pairs.append(current)
                    current = Pair(directory: directory, entries: index..<index, hasSuperblock: false)
                    used = 0
                }
                current.entries = current.entries.lowerBound..<(index + 1)
                used += bytes
            }
            pairs.append(current)
        }

        var next = 2 * pairs.count
        for entries in tree.directories {
            for entry in entries {
                guard case .file(let index) = entry.child else { continue }
                let size = tree.fileSizes[index]
                guard size > parameters.inlineLimit else { continue }
                firstBlock[index] = next
                next += LittleFSFormat.ctzBlockCount(size: size, blockSize: blockSize)
            }
        }
        guard next <= parameters.blockCount else {
            let dataBlocks = next - 2 * pairs.count
            throw .doesNotFit(
                filesystem: LittleFSParameters.filesystem, needed: next * blockSize, available: parameters.imageBytes,
                detail: "\(next) blocks of \(blockSize) bytes (\(pairs.count) metadata pairs, \(dataBlocks) file blocks), "
                    + "block-count is \(parameters.blockCount)")
        }
    }

    private func structLength(of entry: LittleFSTree.Entry, tree: LittleFSTree) -> Int {
        guard case .file(let index) = entry.child else { return 8 }
        let size = tree.fileSizes[index]
        return size <= parameters.inlineLimit ? size : 8
    }

    /// The image bytes.
    func image(tree: LittleFSTree, files: [(path: String, contents: [UInt8])]) -> [UInt8] {
        let blockSize = parameters.blockSize
        var image = [UInt8](repeating: 0xFF, count: parameters.imageBytes)
        for (number, pair) in pairs.enumerated() {
            var commit = LittleFSCommitWriter(blockSize: blockSize, revision: 1)
            var id: UInt32 = 0
            if pair.hasSuperblock {
                commit.append(LittleFSFormat.typeSuperblock, id: 0, data: LittleFSFormat.magic)
                let fields =
                    [parameters.diskVersion]
                    + [
                        blockSize, parameters.blockCount, parameters.nameMax,
                        parameters.fileMax, parameters.attrMax,
                    ].map { UInt32($0) }
                commit.append(LittleFSFormat.typeInlineStruct, id: 0, data: fields.flatMap(LittleFSFormat.littleEndian))
                id = 1
            }
            for entry in tree.directories[pair.directory][pair.entries] {
                switch entry.child {
                case .directory(let directory):
                    commit.append(LittleFSFormat.typeDirectory, id: id, data: entry.name)
                    commit.append(LittleFSFormat.typeDirStruct, id: id, data: Self.pointer(to: headPair[directory]))
                case .file(let index):
                    let contents = files[index].contents
                    commit.append(LittleFSFormat.typeRegular, id: id, data: entry.name)
                    if let first = firstBlock[index] {
                        let head = first + LittleFSFormat.ctzBlockCount(size: contents.count, blockSize: blockSize) - 1
                        commit.append(
                            LittleFSFormat.typeCTZStruct, id: id,
                            data: LittleFSFormat.littleEndian(UInt32(head)) + LittleFSFormat.littleEndian(UInt32(contents.count)))
                        writeSkipList(contents, from: first, into: &image)
                    } else {
                        commit.append(LittleFSFormat.typeInlineStruct, id: id, data: contents)
                    }
                }
                id += 1
            }
            if number + 1 < pairs.count {
                let sameDirectory = pairs[number + 1].directory == pair.directory
                commit.append(
                    sameDirectory ? LittleFSFormat.typeHardTail : LittleFSFormat.typeSoftTail,
                    id: LittleFSFormat.pairID, data: Self.pointer(to: number + 1))
            }
            image.replaceSubrange((2 * number * blockSize)..<((2 * number + 1) * blockSize), with: commit.finish())
        }
        return image
    }

    /// A metadata-pair pointer: the written block first, then its erased partner.
    private static func pointer(to pair: Int) -> [UInt8] {
        LittleFSFormat.littleEndian(UInt32(2 * pair)) + LittleFSFormat.littleEndian(UInt32(2 * pair + 1))
    }

    /// Writes `contents` as a CTZ skip-list in consecutive blocks from `first`: block `i` starts
    /// with pointers to blocks `i - 1`, `i - 2`, … `i - 2^ctz(i)`, then data.
    private func writeSkipList(_ contents: [UInt8], from first: Int, into image: inout [UInt8]) {
        let blockSize = parameters.blockSize
        var written = 0
        var index = 0
        while written < contents.count {
            let block = first + index
            var offset = block * blockSize
            for skip in 0..<LittleFSFormat.ctzPointerCount(index) {
                image.replaceSubrange(offset..<(offset + 4), with: LittleFSFormat.littleEndian(UInt32(block - (1 << skip))))
                offset += 4
            }
            let count = min(contents.count - written, (block + 1) * blockSize - offset)
            image.replaceSubrange(offset..<(offset + count), with: contents[written..<(written + count)])
            written += count
            index += 1
        }
    }
}
