import Foundation
import Testing

@testable import OTAMeshFirmware

/// Whether littlefs-python (the real littlefs, compiled) can be imported; checked once.
let littlefsPythonAvailable: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import littlefs"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

/// LittleFS images: built by us and mounted by littlefs (littlefs-python 0.19.0, littlefs 2.11),
/// written by littlefs and read by us (Tests/Fixtures/littlefs/README.md), and hostile bytes.
@Suite("LittleFS images")
struct LittleFSTests {
    typealias Files = [(path: String, contents: [UInt8])]

    /// Deterministic bytes that differ per file.
    static func pattern(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ ($0 >> 8)) }
    }

    /// A web tree: nested directories, an empty file, names that are prefixes of each other
    /// ("a", "a.txt": littlefs puts the longer first), inline and CTZ files.
    static let webTree: Files = [
        ("config.json", Array(#"{"ssid":"lab","channel":6}"#.utf8)),
        ("www/index.html", pattern(700, seed: 1)),
        ("www/css/site.css", pattern(90, seed: 2)),
        ("empty.txt", []),
        ("a", pattern(3, seed: 4)),
        ("a.txt", pattern(64, seed: 5)),
        ("ab", pattern(17, seed: 6)),
        ("b/c/d/f.bin", pattern(513, seed: 7)),
    ]

    /// One geometry and tree checked against littlefs-python.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var parameters: LittleFSParameters
        var files: Files
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "4096×16, a small web tree", parameters: LittleFSParameters(blockSize: 4096, blockCount: 16),
            files: [webTree[0], webTree[1], webTree[3], ("www/app.js", pattern(5000, seed: 3))]),
        // 10 data blocks: block 8 carries 4 skip pointers, blocks 2, 4, 6 two or three.
        Case(
            name: "4096×64, a CTZ file of 10 blocks", parameters: LittleFSParameters(blockSize: 4096, blockCount: 64),
            files: webTree + [("firmware/app.bin", pattern(4096 * 9 + 123, seed: 8))]),
        Case(
            name: "512×128, 21-block file", parameters: LittleFSParameters(blockSize: 512, blockCount: 128),
            files: webTree + [("big.bin", pattern(512 * 20 + 5, seed: 9))]),
        // 128-byte blocks: the root splits over several pairs, with "a" and "a.txt" in different ones.
        Case(name: "128×256, directories split over pairs", parameters: LittleFSParameters(blockSize: 128, blockCount: 256), files: webTree),
        Case(
            name: "256×64, disk version 2.1", parameters: LittleFSParameters(blockSize: 256, blockCount: 64, diskVersion: 0x0002_0001),
            files: webTree),
        Case(
            name: "512×256, 300 files in the root and 40 in a subdirectory",
            parameters: LittleFSParameters(blockSize: 512, blockCount: 256),
            files: (0..<300).map { ("f\($0).txt", pattern($0 % 70, seed: $0)) } + (0..<40).map { ("sub/g\($0).bin", pattern($0 * 37, seed: $0)) }),
    ]

    @Test("build is deterministic: the same files and parameters give the same bytes, in any input order")
    func deterministic() throws {
        let parameters = LittleFSParameters(blockSize: 4096, blockCount: 32)
        let image = try LittleFSImage.build(files: Self.webTree, parameters: parameters)
        #expect(image.count == 4096 * 32)
        #expect(try LittleFSImage.build(files: Self.webTree, parameters: parameters) == image)
        #expect(try LittleFSImage.build(files: Self.webTree.reversed(), parameters: parameters) == image)
        #expect(Array(image[8..<16]) == Array("littlefs".utf8), "the magic sits at offset 8 of block 0")
        // 6 directories take blocks 0-11, the two CTZ files blocks 12 and 13.
        #expect(image[(4096 * 14)...].allSatisfy { $0 == 0xFF }, "unused blocks stay erased")
        #expect(image[(4096 * 13)..<(4096 * 14)].contains { $0 != 0xFF })
    }

    @Test("read returns exactly what build wrote, sorted by path", arguments: cases)
    func roundTrip(_ example: Case) throws {
        let image = try LittleFSImage.build(files: example.files, parameters: example.parameters)
        let files = try LittleFSImage.read(image, parameters: example.parameters)
        let expected = example.files.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
        #expect(files.map(\.path) == expected.map(\.path))
        #expect(files.map(\.contents) == expected.map(\.contents))
    }

    @Test(
        "littlefs mounts our image and reads every file, in littlefs's own directory order",
        .enabled(if: littlefsPythonAvailable, "needs littlefs-python (make deps installs it)"), arguments: cases)
    func littlefsReadsOurImage(_ example: Case) throws {
        let image = try LittleFSImage.build(files: example.files, parameters: example.parameters)
        let view = try Self.littlefsPython(image, example.parameters).view
        #expect(view.version == Int(example.parameters.diskVersion))
        #expect(view.files == Self.hexByPath(example.files))
        // Each directory as lfs_dir_read lists it equals the order build chose.
        var expected: [String: [String]] = [:]
        for (path, _) in example.files {
            var components = path.split(separator: "/").map(String.init)
            while let name = components.popLast() {
                let directory = components.joined(separator: "/")
                if !(expected[directory]?.contains(name) ?? false) { expected[directory, default: []].append(name) }
            }
        }
        for (directory, names) in expected {
            let sorted = names.sorted { LittleFSFormat.namePrecedes(Array($0.utf8), Array($1.utf8)) }
            #expect(view.listings[directory] == sorted, "directory \(directory.debugDescription)")
        }
    }

    @Test(
        "littlefs can write into our image (its free-space and metadata state is consistent), and both read the result",
        .enabled(if: littlefsPythonAvailable, "needs littlefs-python (make deps installs it)"), arguments: cases)
    func littlefsWritesIntoOurImage(_ example: Case) throws {
        let image = try LittleFSImage.build(files: example.files, parameters: example.parameters)
        let added = Self.pattern(example.parameters.blockSize * 2 + 77, seed: 99)
        // One file in the root (CTZ), one in the first subdirectory (inline).
        let directory = example.files.lazy.compactMap { $0.path.split(separator: "/").dropLast().first }.first ?? "sub"
        let writes: Files = [("added.bin", added), ("\(directory)/new.txt", Array("hi".utf8))]
        let (view, after) = try Self.littlefsPython(image, example.parameters, writes: writes)
        let all = example.files + writes
        #expect(view.files == Self.hexByPath(all))
        #expect(view.version == 0x0002_0001, "a 2.1 driver upgrades the superblock on its first write")
        let files = try LittleFSImage.read(after, parameters: example.parameters)
        #expect(Dictionary(uniqueKeysWithValues: files.map { ($0.path, $0.contents) }) == Dictionary(uniqueKeysWithValues: all.map { ($0.path, $0.contents) }))
    }

    @Test("reads the image littlefs-python wrote (commit logs with FCRCs and creates) back to its inputs")
    func readsLittlefsPythonFixture() throws {
        let image = try Fixtures.bytes("littlefs/python-512x64.img")
        let files = try LittleFSImage.read(image, parameters: LittleFSParameters(blockSize: 512, blockCount: 64))
        #expect(files.map(\.path) == ["config.json", "firmware.bin", "www/index.html"])
        for file in files {
            #expect(file.contents == (try Fixtures.bytes("littlefs/python-512x64/\(file.path)")), "\(file.path)")
        }
        #expect(files.first { $0.path == "firmware.bin" }?.contents.count == 3000, "a CTZ skip-list of 6 blocks")
        #expect(
            throws: FilesystemImageError.malformedImage(
                filesystem: "LittleFS", offset: 512, reason: "the superblock says 64 blocks of 512 bytes, the parameters 32 of 512")
        ) {
            try LittleFSImage.read(image, parameters: LittleFSParameters(blockSize: 512, blockCount: 32))
        }
    }

    @Test("a name longer than name-max is refused, naming the path and the limit")
    func nameTooLong() throws {
        let parameters = LittleFSParameters(blockSize: 4096, blockCount: 16, nameMax: 32)
        let name = String(repeating: "w", count: 33)
        #expect(
            throws: FilesystemImageError.invalidPath(
                filesystem: "LittleFS", path: "www/" + name, reason: "name \(name.debugDescription) is 33 bytes, name-max allows 32")
        ) {
            try LittleFSImage.build(files: [("www/" + name, [1])], parameters: parameters)
        }
        _ = try LittleFSImage.build(files: [("www/" + String(name.dropLast()), [1])], parameters: parameters)
        // A name littlefs allows but a 128-byte block's metadata cannot hold.
        #expect(
            throws: FilesystemImageError.invalidPath(
                filesystem: "LittleFS", path: String(repeating: "y", count: 100),
                reason: "its entry needs 108 bytes of metadata, a 128-byte block holds at most 88 per pair")
        ) {
            try LittleFSImage.build(files: [(String(repeating: "y", count: 100), [])], parameters: LittleFSParameters(blockSize: 128, blockCount: 16))
        }
    }

    @Test("files that do not fit say how many bytes they need and the image has")
    func doesNotFit() {
        #expect(
            throws: FilesystemImageError.doesNotFit(
                filesystem: "LittleFS", needed: 77824, available: 65536,
                detail: "19 blocks of 4096 bytes (1 metadata pairs, 17 file blocks), block-count is 16")
        ) {
            try LittleFSImage.build(files: [("big.bin", Self.pattern(4096 * 16, seed: 1))], parameters: LittleFSParameters(blockSize: 4096, blockCount: 16))
        }
        // Every directory costs a metadata pair (two blocks).
        let deep: Files = (0..<8).map { ("d\($0)/f", [1]) }
        #expect(throws: FilesystemImageError.self) {
            try LittleFSImage.build(files: deep, parameters: LittleFSParameters(blockSize: 4096, blockCount: 16))
        }
    }

    @Test("bad parameters are refused, naming the parameter and why")
    func badParameters() {
        #expect(
            throws: FilesystemImageError.invalidParameter(
                filesystem: "LittleFS", parameter: "block-size", value: "100", reason: "must be at least 128 and a multiple of 4")
        ) {
            try LittleFSImage.build(files: [], parameters: LittleFSParameters(blockSize: 100, blockCount: 16))
        }
        let invalid = [
            LittleFSParameters(blockSize: 130, blockCount: 16),
            LittleFSParameters(blockSize: 4096, blockCount: 1),
            LittleFSParameters(blockSize: 4096, blockCount: 1 << 20),
            LittleFSParameters(blockSize: 1 << 40, blockCount: 2),
            LittleFSParameters(blockSize: 4096, blockCount: 16, nameMax: 0),
            LittleFSParameters(blockSize: 4096, blockCount: 16, nameMax: 1023),
            LittleFSParameters(blockSize: 4096, blockCount: 16, fileMax: Int.max),
            LittleFSParameters(blockSize: 4096, blockCount: 16, attrMax: 2000),
            LittleFSParameters(blockSize: 4096, blockCount: 16, inlineMax: 513),
            LittleFSParameters(blockSize: 4096, blockCount: 16, inlineMax: -1),
            LittleFSParameters(blockSize: 4096, blockCount: 16, diskVersion: 0x0003_0000),
        ]
        for parameters in invalid {
            #expect(throws: FilesystemImageError.self, "\(parameters)") { try parameters.validated() }
            #expect(throws: FilesystemImageError.self) { try LittleFSImage.read([], parameters: parameters) }
        }
    }

    @Test("paths that are empty, have an empty or dot component, repeat, or are both file and directory are refused")
    func badPaths() {
        let parameters = LittleFSParameters(blockSize: 4096, blockCount: 16)
        let refused: [(Files, String, String)] = [
            ([("", [])], "", "empty path"),
            ([("/a", [])], "/a", "empty path component (leading, trailing or double /)"),
            ([("a//b", [])], "a//b", "empty path component (leading, trailing or double /)"),
            ([("a/", [])], "a/", "empty path component (leading, trailing or double /)"),
            ([("./a", [])], "./a", #"".""# + " and " + #""..""# + " are not names"),
            ([("a", []), ("a", [1])], "a", "duplicate path"),
            ([("a", []), ("a/b", [])], "a/b", "a parent is also a file (a)"),
            ([("a/b", []), ("a", [])], "a", "is also a directory (of a/b)"),
        ]
        for (files, path, reason) in refused {
            #expect(throws: FilesystemImageError.invalidPath(filesystem: "LittleFS", path: path, reason: reason)) {
                try LittleFSImage.build(files: files, parameters: parameters)
            }
        }
    }

    @Test("random, truncated and corrupted bytes are refused as malformed (or read), never a crash")
    func hostileBytes() throws {
        let parameters = LittleFSParameters(blockSize: 512, blockCount: 32)
        let valid = try LittleFSImage.build(files: Self.webTree + [("m.bin", Self.pattern(3000, seed: 3))], parameters: parameters)
        let python = try Fixtures.bytes("littlefs/python-512x64.img")
        var random = LittleFSXorShift(state: 0x9E37_79B9_7F4A_7C15)
        for round in 0..<600 {
            let source = round % 2 == 0 ? valid : python
            let geometry = round % 2 == 0 ? parameters : LittleFSParameters(blockSize: 512, blockCount: 64)
            var bytes = source
            switch round % 3 {
            case 0: bytes = (0..<source.count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1: bytes = Array(source.prefix(random.below(source.count)))
            default:
                for _ in 0..<(1 + random.below(8)) { bytes[random.below(bytes.count)] ^= UInt8(1) << random.below(8) }
            }
            do {
                _ = try LittleFSImage.read(bytes, parameters: geometry)
                #expect(round % 3 == 2, "round \(round): random or truncated bytes were read")
            } catch {
                guard case .malformedImage = error else {
                    Issue.record("round \(round): \(error)")
                    continue
                }
            }
        }
    }

    @Test("a metadata tail list that loops back to the superblock is refused, not followed forever")
    func tailCycle() throws {
        let parameters = LittleFSParameters(blockSize: 512, blockCount: 32)
        var image = try LittleFSImage.build(files: [("d/x", [1])], parameters: parameters)
        var commit = LittleFSCommitWriter(blockSize: 512, revision: 2)
        commit.append(LittleFSFormat.typeSuperblock, id: 0, data: LittleFSFormat.magic)
        commit.append(
            LittleFSFormat.typeInlineStruct, id: 0,
            data: ([0x0002_0000, 512, 32, 255, 0x7FFF_FFFF, 1022] as [UInt32]).flatMap(LittleFSFormat.littleEndian))
        commit.append(LittleFSFormat.typeSoftTail, id: LittleFSFormat.pairID, data: LittleFSFormat.littleEndian(1) + LittleFSFormat.littleEndian(0))
        image.replaceSubrange(512..<1024, with: commit.finish())
        #expect(
            throws: FilesystemImageError.malformedImage(
                filesystem: "LittleFS", offset: 512, reason: "the metadata tail list loops back to {1, 0}")
        ) {
            try LittleFSImage.read(image, parameters: parameters)
        }
    }

    // MARK: littlefs-python

    /// What littlefs-python read from an image.
    struct PythonView: Decodable {
        var version: Int
        /// Path → contents in hex.
        var files: [String: String]
        /// Directory ("" for the root) → entry names in `lfs_dir_read` order.
        var listings: [String: [String]]
    }

    /// Mounts `image` with littlefs-python (formatting is never attempted), writes `writes`,
    /// then reads every file and directory; returns what it saw and the image afterwards.
    static func littlefsPython(
        _ image: [UInt8], _ parameters: LittleFSParameters, writes: Files = []
    ) throws -> (view: PythonView, image: [UInt8]) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("littlefs-\(UUID().uuidString).img")
        try Data(image).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            ["python3", "-", file.path, String(parameters.blockSize), String(parameters.blockCount)]
            + writes.flatMap { [$0.path, hex($0.contents)] }
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(script.utf8))
        try input.fileHandleForWriting.close()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PythonFailed(status: process.terminationStatus, stderr: stderr)
        }
        return (try JSONDecoder().decode(PythonView.self, from: stdout), [UInt8](try Data(contentsOf: file)))
    }

    struct PythonFailed: Error, CustomStringConvertible {
        var status: Int32
        var stderr: String
        var description: String { "littlefs-python exited \(status): \(stderr)" }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] }, as: UTF8.self)
    }

    static func hexByPath(_ files: Files) -> [String: String] {
        Dictionary(uniqueKeysWithValues: files.map { ($0.path, hex($0.contents)) })
    }

    /// `python3 - IMAGE BLOCK_SIZE BLOCK_COUNT [PATH HEX]...`
    static let script = """
        import json, sys
        import littlefs
        image, block_size, block_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        writes = sys.argv[4:]
        buffer = bytearray(open(image, "rb").read())
        def mount():
            fs = littlefs.LittleFS(context=littlefs.UserContext(buffer=buffer), block_size=block_size,
                                   block_count=block_count, mount=False)
            fs.mount()
            return fs
        fs = mount()
        for path, data in zip(writes[0::2], writes[1::2]):
            with fs.open(path, "wb") as f:
                f.write(bytes.fromhex(data))
        if writes:
            fs.unmount()
            open(image, "wb").write(buffer)
            fs = mount()
        files, listings = {}, {}
        for root, dirs, names in fs.walk("/"):
            directory = root.strip("/")
            listings[directory] = fs.listdir(root)
            for name in names:
                path = (directory + "/" + name).lstrip("/")
                with fs.open(path, "rb") as f:
                    files[path] = f.read().hex()
        print(json.dumps({"version": fs.fs_stat().disk_version, "files": files, "listings": listings}))
        """
}

/// A tiny deterministic generator for the hostile-bytes test (xorshift64).
private struct LittleFSXorShift {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    mutating func below(_ bound: Int) -> Int { bound <= 0 ? 0 : Int(next() % UInt64(bound)) }
}
