/// One metadata pair as `lfs_dir_fetch` sees it: the block with the newer revision whose log has
/// a valid commit, replayed up to its last commit with a matching CRC.
///
/// Tags are replayed forwards: create/delete tags insert/remove ids, the latest name and struct
/// tag of an id win, the latest tail and move-state delta win. Every offset is checked against
/// the block, and the block against the image, before it is read.
struct LittleFSMetadataPair {
    struct Entry {
        /// Name tag type (0x001 file, 0x002 directory, 0x0ff superblock); nil if never named.
        var type: UInt32?
        var name: ArraySlice<UInt8> = []
        /// Struct tag type (0x200 dir, 0x201 inline, 0x202 CTZ) and its data.
        var structType: UInt32?
        var structData: ArraySlice<UInt8> = []
    }

    /// The two blocks, the one read first.
    let blocks: (UInt32, UInt32)
    private(set) var entries: [Entry] = []
    /// Next pair on the threaded list, and whether it continues this directory (hard tail).
    private(set) var tail: (UInt32, UInt32)?
    private(set) var continuesDirectory = false
    /// The pair's global-state delta (tag, pair), XORed across all pairs by a mount.
    private(set) var moveDelta: [UInt32] = [0, 0, 0]

    /// Fetches `pair`. `work` counts tags replayed plus entries shifted by creates and deletes
    /// (a hostile log of creates costs quadratic time); past `LittleFSImageView.workLimit` the
    /// image is refused.
    init(_ pair: (UInt32, UInt32), in image: LittleFSImageView, work: inout Int) throws(FilesystemImageError) {
        guard Int(pair.0) < image.blockCount, Int(pair.1) < image.blockCount else {
            throw image.malformed(0, "metadata pair {\(pair.0), \(pair.1)} is outside the \(image.blockCount) blocks")
        }
        let revisions = [image.u32(block: Int(pair.0), offset: 0), image.u32(block: Int(pair.1), offset: 0)]
        // Sequence comparison, so the revision count may wrap (lfs_scmp).
        let newer = Int32(bitPattern: revisions[1] &- revisions[0]) > 0 ? 1 : 0
        let order = newer == 0 ? [pair.0, pair.1] : [pair.1, pair.0]
        for block in order {
            var candidate = Self(blocks: (block, block == pair.0 ? pair.1 : pair.0))
            if try candidate.replay(block: Int(block), in: image, work: &work) {
                self = candidate
                return
            }
        }
        throw image.malformed(Int(pair.0) * image.blockSize, "metadata pair {\(pair.0), \(pair.1)} has no valid commit")
    }

    private init(blocks: (UInt32, UInt32)) { self.blocks = blocks }

    /// Replays the block's commits; false if not even the first commit is valid.
    private mutating func replay(block: Int, in image: LittleFSImageView, work: inout Int) throws(FilesystemImageError) -> Bool {
        let blockSize = image.blockSize
        let base = block * blockSize
        let bytes = image.bytes
        var working = self
        var committed = false
        var offset = 4
        var previousTag: UInt32 = 0xFFFF_FFFF
        var crc = CRC32.update(0xFFFF_FFFF, bytes[base..<(base + 4)])
        while offset + 4 <= blockSize {
            let raw = bytes[(base + offset)..<(base + offset + 4)]
            crc = CRC32.update(crc, raw)
            let tag = image.u32BigEndian(base + offset) ^ previousTag
            let size = LittleFSFormat.diskSize(tag)
            // Invalid bit set (erased or torn), or data past the block: the log ends here.
            guard tag & 0x8000_0000 == 0, offset + size <= blockSize else { break }
            previousTag = tag
            let type = LittleFSFormat.type3(tag)
            let data = bytes[(base + offset + 4)..<(base + offset + size)]
            if type & 0x780 == LittleFSFormat.typeCRC {
                guard offset + 8 <= blockSize, image.u32(block: block, offset: offset + 4) == crc else { break }
                previousTag ^= (type & 1) << 31
                self = working
                committed = true
                crc = 0xFFFF_FFFF
            } else {
                crc = CRC32.update(crc, data)
                work += 1 + working.apply(tag: tag, data: data)
                guard work <= LittleFSImageView.workLimit else {
                    throw image.malformed(base + offset, "the metadata logs take more than \(LittleFSImageView.workLimit) steps to replay")
                }
            }
            offset += size
        }
        return committed
    }

    /// Applies one tag; returns how many entries it moved or created.
    private mutating func apply(tag: UInt32, data: ArraySlice<UInt8>) -> Int {
        let before = entries.count
        let type = LittleFSFormat.type3(tag)
        let id = LittleFSFormat.id(tag)
        let deleted = LittleFSFormat.size(tag) == 0x3FF
        switch type >> 8 {
        case 0:  // name
            while entries.count <= id { entries.append(Entry()) }
            entries[id].type = type
            entries[id].name = data
            return entries.count - before
        case 2:  // struct
            guard id < entries.count else { return 0 }
            entries[id].structType = deleted ? nil : type
            entries[id].structData = data
        case 4:  // splice: create / delete
            if type == LittleFSFormat.typeCreate {
                while entries.count < id { entries.append(Entry()) }
                entries.insert(Entry(), at: id)
                return entries.count - id
            } else if type == LittleFSFormat.typeDelete, id < entries.count {
                entries.remove(at: id)
                return entries.count - id + 1
            }
        case 6 where data.count >= 8:  // tail
            let words = Self.words(data, count: 2)
            tail = (words[0], words[1])
            continuesDirectory = type & 1 == 1
        case 7 where type == LittleFSFormat.typeMoveState && data.count >= 12:
            moveDelta = Self.words(data, count: 3)
        default:
            break  // user attributes, FCRC, reserved types
        }
        return 0
    }

    static func words(_ data: ArraySlice<UInt8>, count: Int) -> [UInt32] {
        (0..<count).map { word in
            (0..<4).reduce(UInt32(0)) { value, byte in
                value | UInt32(data[data.startIndex + 4 * word + byte]) << (8 * byte)
            }
        }
    }
}

/// The image bytes with the block geometry. Its reads trap out of range: callers check block
/// numbers against `blockCount` and offsets against `blockSize` first, and `read` has checked
/// that the image holds `blockSize × blockCount` bytes.
struct LittleFSImageView {
    let bytes: [UInt8]
    let blockSize: Int
    let blockCount: Int
    /// Replay steps allowed for a whole read: far above any real image (a full 64 MiB image
    /// of compacted pairs takes one step per tag, under 17 million).
    static let workLimit = 1 << 26

    func u32(block: Int, offset: Int) -> UInt32 {
        let start = block * blockSize + offset
        return LittleFSMetadataPair.words(bytes[start..<(start + 4)], count: 1)[0]
    }

    func u32BigEndian(_ start: Int) -> UInt32 {
        bytes[start..<(start + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    func malformed(_ offset: Int, _ reason: String) -> FilesystemImageError {
        .malformedImage(filesystem: LittleFSParameters.filesystem, offset: offset, reason: reason)
    }
}
