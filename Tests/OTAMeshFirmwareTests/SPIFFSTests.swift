import Testing

@testable import OTAMeshFirmware

/// SPIFFS images against golden images from ESP-IDF's spiffsgen.py
/// (Tests/Fixtures/spiffs/README.md says how they were made).
@Suite("SPIFFS images")
struct SPIFFSTests {
    /// Each golden image's spiffsgen options.
    static let parameterSets: [String: SPIFFSParameters] = [
        "idf-default": SPIFFSParameters(imageSize: 0x10000),
        "esp8266-arduino": SPIFFSParameters(
            imageSize: 0x20000, pageSize: 256, blockSize: 8192, metaLength: 0,
            useMagicLength: false, alignedObjectIndexTables: true),
        "aligned-512": SPIFFSParameters(imageSize: 0x20000, pageSize: 512, blockSize: 8192, alignedObjectIndexTables: true),
        "bare-big-endian": SPIFFSParameters(
            imageSize: 0x10000, objectNameLength: 64, metaLength: 0,
            useMagic: false, useMagicLength: false, bigEndian: true),
        "small-page": SPIFFSParameters(imageSize: 0x10000, pageSize: 128, blockSize: 8192),
    ]

    /// The input files in the order spiffsgen added them (generate.py sorts its os.walk).
    static let inputPaths = ["calibration.bin", "config.json", "empty.txt", "www/index.html", "www/css/style.css"]

    static func inputs() throws -> [(path: String, contents: [UInt8])] {
        try inputPaths.map { (path: $0, contents: try Fixtures.bytes("spiffs/inputs/\($0)")) }
    }

    /// The first offset where two byte arrays differ (the shorter one's length if one is a prefix).
    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
        if let offset = zip(a, b).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset { return offset }
        return a.count == b.count ? nil : min(a.count, b.count)
    }

    static func isMalformed(_ error: FilesystemImageError) -> Bool {
        if case .malformedImage = error { true } else { false }
    }

    @Test("the built image is byte for byte spiffsgen's", arguments: parameterSets.keys.sorted())
    func matchesSpiffsgen(name: String) throws {
        let parameters = try #require(Self.parameterSets[name])
        let golden = try Fixtures.bytes("spiffs/\(name).bin")
        let built = try SPIFFSImage.build(files: try Self.inputs(), parameters: parameters)
        let difference = Self.firstDifference(built, golden)
        #expect(difference == nil, "\(name): \(built.count) bytes built, \(golden.count) golden, first difference at offset \(difference ?? -1)")
    }

    @Test(
        "reading spiffsgen's image gives the input files in order, and building them again gives the image",
        arguments: parameterSets.keys.sorted())
    func readsSpiffsgen(name: String) throws {
        let parameters = try #require(Self.parameterSets[name])
        let golden = try Fixtures.bytes("spiffs/\(name).bin")
        let files = try SPIFFSImage.read(golden, parameters: parameters)
        let inputs = try Self.inputs()
        #expect(files.map(\.path) == Self.inputPaths.map { "/" + $0 })
        for (file, input) in zip(files, inputs) {
            let difference = Self.firstDifference(file.contents, input.contents)
            #expect(difference == nil, "\(name): \(file.path) read as \(file.contents.count) bytes, first difference at \(difference ?? -1)")
        }
        let rebuilt = try SPIFFSImage.build(files: files, parameters: parameters)
        #expect(Self.firstDifference(rebuilt, golden) == nil, "\(name): rebuilding what was read differs")
    }

    @Test("an image without files reads back empty")
    func emptyImage() throws {
        let parameters = SPIFFSParameters(imageSize: 0x8000)
        let image = try SPIFFSImage.build(files: [], parameters: parameters)
        #expect(image.count == 0x8000)
        #expect(try SPIFFSImage.read(image, parameters: parameters).isEmpty)
    }

    @Test("a name longer than obj-name-len minus its NUL is refused, naming the path")
    func nameTooLong() {
        let parameters = SPIFFSParameters(imageSize: 0x10000)
        let path = "config/" + String(repeating: "w", count: 24) + ".json"
        #expect(
            throws: FilesystemImageError.invalidPath(
                filesystem: "SPIFFS", path: path, reason: "name is 37 bytes, obj-name-len 32 allows 31")
        ) {
            try SPIFFSImage.build(files: [(path: path, contents: [1])], parameters: parameters)
        }
        let longest = String(repeating: "a", count: 30)
        #expect(throws: Never.self) { try SPIFFSImage.build(files: [(path: longest, contents: [])], parameters: parameters) }
        #expect(throws: FilesystemImageError.self) {
            try SPIFFSImage.build(files: [(path: longest + "a", contents: [])], parameters: parameters)
        }
    }

    @Test("files that do not fit say how many bytes they need")
    func doesNotFit() {
        let parameters = SPIFFSParameters(imageSize: 0x10000)
        #expect(
            throws: FilesystemImageError.doesNotFit(
                filesystem: "SPIFFS", needed: 77824, available: 0x10000,
                detail: "the files take 19 blocks of 4096 bytes, the image has 16")
        ) {
            try SPIFFSImage.build(files: [(path: "big.bin", contents: [UInt8](repeating: 7, count: 70_000))], parameters: parameters)
        }
    }

    @Test("bad parameters are refused, naming the parameter")
    func badParameters() {
        #expect(
            throws: FilesystemImageError.invalidParameter(
                filesystem: "SPIFFS", parameter: "page-size", value: "300", reason: "must be a power of two from 64 to 32768")
        ) {
            try SPIFFSImage.build(files: [], parameters: SPIFFSParameters(imageSize: 0x10000, pageSize: 300))
        }
        let invalid: [SPIFFSParameters] = [
            SPIFFSParameters(imageSize: 0x10100),
            SPIFFSParameters(imageSize: 1 << 40),
            SPIFFSParameters(imageSize: 32 << 20),
            SPIFFSParameters(imageSize: 0x10000, blockSize: 256),
            SPIFFSParameters(imageSize: 0x10000, objectNameLength: Int.max),
            SPIFFSParameters(imageSize: 0x10000, metaLength: -1),
            SPIFFSParameters(imageSize: 0x10000, pageSize: 64, objectNameLength: 50),
        ]
        for parameters in invalid {
            #expect(throws: FilesystemImageError.self) { try parameters.validated() }
        }
    }

    @Test("the same path twice is refused; a leading slash is optional")
    func duplicatePath() {
        #expect(throws: FilesystemImageError.invalidPath(filesystem: "SPIFFS", path: "/a", reason: "is given twice")) {
            try SPIFFSImage.build(files: [(path: "a", contents: []), (path: "/a", contents: [])], parameters: SPIFFSParameters(imageSize: 0x10000))
        }
    }

    @Test("random, truncated and corrupted bytes are refused as malformed, never a crash")
    func hostileBytes() throws {
        var random = XorShift64(seed: 0x9E37_79B9_7F4A_7C15)
        for name in Self.parameterSets.keys.sorted() {
            let parameters = try #require(Self.parameterSets[name])
            let golden = try Fixtures.bytes("spiffs/\(name).bin")
            for round in 0..<120 {
                var bytes = golden
                switch round % 3 {
                case 0:
                    bytes = random.bytes(parameters.imageSize)
                case 1:
                    bytes = Array(golden.prefix(random.below(golden.count)))
                default:
                    for _ in 0..<(1 + random.below(8)) {
                        bytes[random.below(bytes.count)] ^= UInt8(1) << random.below(8)
                    }
                }
                do {
                    _ = try SPIFFSImage.read(bytes, parameters: parameters)
                    #expect(round % 3 == 2, "\(name) round \(round): random or truncated bytes were read")
                } catch {
                    #expect(Self.isMalformed(error), "\(name) round \(round): \(error)")
                }
            }
        }
    }
}

/// A tiny deterministic generator for the hostile-bytes test (xorshift64).
private struct XorShift64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func bytes(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 7)
        while bytes.count < count {
            let word = next()
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return Array(bytes.prefix(count))
    }
}
