/// Builds and reads LittleFS (on-disk format v2, littlefs SPEC.md) images in pure Swift.
///
/// `build` lays files out the way a freshly compacted littlefs would hold them, deterministically
/// (the same files and parameters give the same bytes, whatever the input order):
///
/// - blocks 0/1 are the superblock pair, which is also the root directory: id 0 is the
///   superblock entry ("littlefs" name tag + inline struct), the root's entries follow;
/// - each directory is a chain of metadata pairs (hard tails) holding its entries sorted the
///   way littlefs compares names (bytewise, then the longer name first), so `lfs_dir_find`
///   finds them across split pairs and littlefs inserts new names in order;
///   a pair holds at most half a block of entry tags and 254 entries, littlefs's own split rule;
/// - every pair is on the threaded tail list littlefs's allocator walks, in pre-order (each
///   directory's pairs, then its subdirectories'), the order `lfs_mkdir` produces;
/// - files up to ``LittleFSParameters/inlineMax`` bytes are inline, larger ones CTZ skip-lists;
/// - metadata pairs take blocks 2k/2k+1 in that order (the first block of each pair holds one
///   commit at revision 1, the second stays erased), file blocks follow, the rest is 0xff.
///
/// Only regular files are stored; directories exist because a path names them.
public enum LittleFSImage {
    /// The image bytes for `files` (paths like `www/index.html`, no leading `/`).
    public static func build(
        files: [(path: String, contents: [UInt8])], parameters: LittleFSParameters
    ) throws(FilesystemImageError) -> [UInt8] {
        let parameters = try parameters.validated()
        let tree = try LittleFSTree(files: files, parameters: parameters)
        let layout = try LittleFSLayout(tree: tree, parameters: parameters)
        return layout.image(tree: tree, files: files)
    }
}

/// The directory tree named by the input paths, validated against littlefs's limits.
struct LittleFSTree {
    enum Child { case file(Int), directory(Int) }
    struct Entry {
        var name: [UInt8]
        var child: Child
    }
    /// Directories in pre-order (index 0 is the root), each with its entries sorted by name.
    private(set) var directories: [[Entry]] = []
    /// Each input file's size and path, by input index.
    let fileSizes: [Int]
    let filePaths: [String]

    init(files: [(path: String, contents: [UInt8])], parameters: LittleFSParameters) throws(FilesystemImageError) {
        fileSizes = files.map(\.contents.count)
        filePaths = files.map(\.path)
        // Each name's child, and the input file that first named it (for error messages).
        var unsorted: [[[UInt8]: (child: Child, origin: Int)]] = [[:]]
        for (index, file) in files.enumerated() {
            let components = try Self.components(of: file.path, parameters: parameters)
            if file.contents.count > parameters.fileMax {
                throw .doesNotFit(
                    filesystem: LittleFSParameters.filesystem, needed: file.contents.count, available: parameters.fileMax,
                    detail: "\(file.path) is \(file.contents.count) bytes, file-max allows \(parameters.fileMax)")
            }
            var directory = 0
            for (depth, name) in components.enumerated() {
                let isLast = depth == components.count - 1
                switch unsorted[directory][name] {
                case nil where isLast:
                    unsorted[directory][name] = (.file(index), index)
                case nil:
                    unsorted.append([:])
                    unsorted[directory][name] = (.directory(unsorted.count - 1), index)
                    directory = unsorted.count - 1
                case let ((.directory(next), _))? where !isLast:
                    directory = next
                case let ((.file, origin))?:
                    throw Self.pathError(file.path, isLast ? "duplicate path" : "a parent is also a file (\(files[origin].path))")
                case let ((.directory, origin))?:
                    throw Self.pathError(file.path, "is also a directory (of \(files[origin].path))")
                }
            }
        }
        // Pre-order: a directory, then each subdirectory's subtree in name order.
        var order: [Int] = []
        var stack = [0]
        var sorted = [[Entry]](repeating: [], count: unsorted.count)
        while let directory = stack.popLast() {
            order.append(directory)
            sorted[directory] = unsorted[directory].map { Entry(name: $0.key, child: $0.value.child) }
                .sorted { LittleFSFormat.namePrecedes($0.name, $1.name) }
            for entry in sorted[directory].reversed() {
                if case .directory(let sub) = entry.child { stack.append(sub) }
            }
        }
        var position = [Int](repeating: 0, count: unsorted.count)
        for (rank, directory) in order.enumerated() { position[directory] = rank }
        directories = order.map { directory in
            sorted[directory].map { entry in
                guard case .directory(let sub) = entry.child else { return entry }
                return Entry(name: entry.name, child: .directory(position[sub]))
            }
        }
    }

    private static func components(of path: String, parameters: LittleFSParameters) throws(FilesystemImageError) -> [[UInt8]] {
        guard !path.isEmpty else { throw pathError(path, "empty path") }
        guard path.utf8.count <= LittleFSFormat.maxPathBytes else {
            throw pathError(path, "path is \(path.utf8.count) bytes, at most \(LittleFSFormat.maxPathBytes)")
        }
        let components = Array(path.utf8).split(separator: 0x2F, omittingEmptySubsequences: false).map(Array.init)
        for name in components {
            if name.isEmpty { throw pathError(path, "empty path component (leading, trailing or double /)") }
            if name == [0x2E] || name == [0x2E, 0x2E] { throw pathError(path, "\".\" and \"..\" are not names") }
            if name.contains(0) { throw pathError(path, "names cannot contain NUL") }
            if name.count > parameters.nameMax {
                throw pathError(
                    path,
                    "name \(String(decoding: name, as: UTF8.self).debugDescription) is \(name.count) bytes, name-max allows \(parameters.nameMax)")
            }
        }
        return components
    }

    static func pathError(_ path: String, _ reason: String) -> FilesystemImageError {
        .invalidPath(filesystem: LittleFSParameters.filesystem, path: path, reason: reason)
    }
}
