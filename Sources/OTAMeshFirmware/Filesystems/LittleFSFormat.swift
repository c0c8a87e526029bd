/// The pieces of the littlefs v2 on-disk format (littlefs SPEC.md) shared by the builder and
/// the reader: metadata tags, the commit log encoding and CTZ skip-list arithmetic.
enum LittleFSFormat {
    static let magic = Array("littlefs".utf8)
    /// Longest path this builder writes and this reader returns (Linux's PATH_MAX); littlefs
    /// itself has no limit, but a device's VFS does, and it bounds the reader's work.
    static let maxPathBytes = 4096
    /// A null block pointer (`LFS_BLOCK_NULL`).
    static let nullBlock: UInt32 = 0xFFFF_FFFF

    // Tag types (type3, 11 bits).
    static let typeRegular: UInt32 = 0x001
    static let typeDirectory: UInt32 = 0x002
    static let typeSuperblock: UInt32 = 0x0FF
    static let typeDirStruct: UInt32 = 0x200
    static let typeInlineStruct: UInt32 = 0x201
    static let typeCTZStruct: UInt32 = 0x202
    static let typeCreate: UInt32 = 0x401
    static let typeDelete: UInt32 = 0x4FF
    static let typeCRC: UInt32 = 0x500
    static let typeSoftTail: UInt32 = 0x600
    static let typeHardTail: UInt32 = 0x601
    static let typeMoveState: UInt32 = 0x7FF
    /// The id of tags that belong to the metadata pair, not to a file.
    static let pairID: UInt32 = 0x3FF

    /// Whether name `a` sorts before `b` in a littlefs directory: bytewise over the common
    /// prefix, then the LONGER name first ("a.txt" before "a"), as `lfs_dir_find_match` compares.
    /// Lookups stop at the first entry that sorts after the name, so pairs must keep this order.
    static func namePrecedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        for (x, y) in zip(a, b) where x != y { return x < y }
        return a.count > b.count
    }

    /// `LFS_MKTAG`: valid bit 0, type3, id, length.
    static func tag(_ type: UInt32, id: UInt32, size: Int) -> UInt32 {
        (type << 20) | (id << 10) | UInt32(size)
    }

    static func type3(_ tag: UInt32) -> UInt32 { (tag >> 20) & 0x7FF }
    static func id(_ tag: UInt32) -> Int { Int((tag >> 10) & 0x3FF) }
    static func size(_ tag: UInt32) -> Int { Int(tag & 0x3FF) }
    /// Bytes the tag and its data occupy (`lfs_tag_dsize`); a deleted tag (length 0x3ff) has none.
    static func diskSize(_ tag: UInt32) -> Int { size(tag) == 0x3FF ? 4 : 4 + size(tag) }

    static func littleEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8(value >> 24)]
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { littleEndian(value).reversed() }

    /// Bytes of the metadata tags describing one directory entry, as a compaction writes them:
    /// the name tag and the struct tag (the count littlefs's split rule measures).
    static func entryBytes(nameLength: Int, structLength: Int) -> Int { 4 + nameLength + 4 + structLength }

    /// Pointers at the start of block `index` of a CTZ skip-list: block `i` points to blocks
    /// `i - 2^k` for `k` in `0...ctz(i)`; block 0 has none.
    static func ctzPointerCount(_ index: Int) -> Int { index == 0 ? 0 : index.trailingZeroBitCount + 1 }

    /// Blocks a CTZ skip-list of `size` bytes occupies (`lfs_ctz_index(size - 1) + 1`).
    static func ctzBlockCount(size: Int, blockSize: Int) -> Int {
        guard size > 0 else { return 0 }
        var offset = size - 1
        return ctzIndex(&offset, blockSize: blockSize) + 1
    }

    /// `lfs_ctz_index`: the block index holding byte `offset` of a file, and the offset in it.
    static func ctzIndex(_ offset: inout Int, blockSize: Int) -> Int {
        let usable = blockSize - 2 * 4
        let guess = offset / usable
        if guess == 0 { return 0 }
        let index = (offset - 4 * ((guess - 1).nonzeroBitCount + 2)) / usable
        offset = offset - usable * index - 4 * index.nonzeroBitCount
        return index
    }
}

/// One metadata block being written: the revision count followed by a single commit (the shape
/// of a freshly compacted littlefs metadata block), whose CRC tags pad it to the end of the block
/// the way `lfs_dir_commitcrc` does with `prog_size == block_size`.
struct LittleFSCommitWriter {
    private(set) var bytes: [UInt8]
    private var offset = 0
    private var previousTag: UInt32 = 0xFFFF_FFFF
    private var crc: UInt32 = 0xFFFF_FFFF

    init(blockSize: Int, revision: UInt32) {
        bytes = [UInt8](repeating: 0xFF, count: blockSize)
        program(LittleFSFormat.littleEndian(revision))
    }

    /// Bytes still free before the closing CRC tag.
    var room: Int { bytes.count - offset - 8 }

    private mutating func program(_ data: [UInt8]) {
        bytes.replaceSubrange(offset..<(offset + data.count), with: data)
        crc = CRC32.update(crc, data[...])
        offset += data.count
    }

    /// Appends one tag (stored big-endian, XORed with the previous tag) and its data.
    mutating func append(_ type: UInt32, id: UInt32, data: [UInt8]) {
        let tag = LittleFSFormat.tag(type, id: id, size: data.count)
        program(LittleFSFormat.bigEndian(tag ^ previousTag))
        program(data)
        previousTag = tag
    }

    /// Closes the commit with CRC tags up to the end of the block. A CRC tag's length covers at
    /// most 0x3fe bytes, so longer padding is a chain of padding commits, each with its own CRC.
    mutating func finish() -> [UInt8] {
        let end = bytes.count
        while offset < end {
            var next = Swift.min(end - (offset + 4), 0x3FE) + offset + 4
            if next < end { next = Swift.min(next, end - 5 * 4) }
            // Valid-state bit 0: the (erased, 0xff) byte after the commit reads as an invalid tag.
            let tag = LittleFSFormat.tag(LittleFSFormat.typeCRC, id: LittleFSFormat.pairID, size: next - (offset + 4))
            let stored = LittleFSFormat.bigEndian(tag ^ previousTag)
            crc = CRC32.update(crc, stored[...])
            bytes.replaceSubrange(offset..<(offset + 8), with: stored + LittleFSFormat.littleEndian(crc))
            offset = next
            previousTag = tag
            crc = 0xFFFF_FFFF
        }
        return bytes
    }
}
