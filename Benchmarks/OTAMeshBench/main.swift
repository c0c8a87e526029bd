import ArgumentParser
import Foundation
import OTAMeshFirmware
import OTAMeshStore

/// The otamesh side of Benchmarks/run.sh: each subcommand does one measured operation as a
/// whole process, so the script can time it against its real peer (sha256sum, xz -dc) alike.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "otamesh-bench", abstract: "Benchmark operations (run Benchmarks/run.sh).",
        subcommands: [Ingest.self, XZDecode.self, Inspect.self, FilesystemBuild.self])

    struct Ingest: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add FILE to a store in DIR (hash while writing, fsync, commit).")
        @Argument var file: String
        @Argument var directory: String

        func run() throws {
            let store = try BlobStore(configuration: StoreConfiguration(directory: directory))
            let record = try store.add(contentsOf: file)
            print(record.sha256)
        }
    }

    struct XZDecode: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "xz-decode", abstract: "Decode an .xz file, discarding the output.")
        @Option(help: "Decoder threads (0 = one per core).") var threads = 0
        @Argument var file: String

        func run() throws {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
            let decoder = try XZDecoder(threads: threads)
            var total = 0
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                try chunk.withUnsafeBytes { raw in try decoder.decode(raw, finish: false) { total += $0.count } }
            }
            try decoder.decode(UnsafeRawBufferPointer(start: nil, count: 0), finish: true) { total += $0.count }
            print(total)
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Inspect each image N times in-process; print µs per image.")
        @Option var iterations = 200
        @Argument var files: [String]

        func run() throws {
            for file in files {
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
                var valid = true
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<iterations { valid = ImageInspector.inspect(bytes).valid && valid }
                let micros = Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000 / Double(iterations)
                print("\(file)\t\(bytes.count)\t\(String(format: "%.1f", micros))\t\(valid)")
            }
        }
    }

    struct FilesystemBuild: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fs-build",
            abstract: "Build a SPIFFS or LittleFS image of DIR's files N times in-process; print µs per image and the image's SHA-256 prefix.")
        @Option(help: "spiffs or littlefs.") var kind: String
        @Option(help: "Image size in bytes.") var size: Int
        @Option var iterations = 100
        @Option(help: "Write the image here (for the comparison of bytes).") var out: String?
        @Argument var directory: String

        func run() throws {
            // Files in sorted order of their relative paths (the Python side walks the same way).
            let root = URL(fileURLWithPath: directory).standardizedFileURL.path
            var files: [(path: String, contents: [UInt8])] = []
            let walker = FileManager.default.enumerator(atPath: root)
            while let relative = walker?.nextObject() as? String {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: "\(root)/\(relative)", isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
                files.append((relative, [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(root)/\(relative)")))))
            }
            files.sort { $0.path < $1.path }
            let build: () throws -> [UInt8]
            switch kind {
            case "spiffs":
                let parameters = SPIFFSParameters(imageSize: size)
                build = { try SPIFFSImage.build(files: files, parameters: parameters) }
            case "littlefs":
                let parameters = LittleFSParameters(blockSize: 4096, blockCount: size / 4096)
                build = { try LittleFSImage.build(files: files, parameters: parameters) }
            default:
                throw ValidationError("--kind is spiffs or littlefs")
            }
            var image = try build()
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations { image = try build() }
            let micros = Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000 / Double(iterations)
            if let out { try Data(image).write(to: URL(fileURLWithPath: out)) }
            print("\(String(format: "%.1f", micros))\t\(image.count)\t\(files.count)")
        }
    }
}
