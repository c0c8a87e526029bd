import ArgumentParser
import Crypto
import Foundation
import OTAMeshCommon
import OTAMeshFirmware

struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Work with firmware images.", subcommands: [Inspect.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Identify firmware images and check every checksum and hash they carry.",
            discussion: """
                Formats: esp32-app, esp8266, wm-ota, mcuboot, raw. Exit 0 when every file is valid; \
                otherwise 1, with one line per bad file on stderr naming the file and the reason. \
                --json prints one JSON object per file, one per line.
                """)

        @Flag(help: "One JSON object per file, one per line.")
        var json = false

        @Option(help: "Require this format (esp32-app, esp8266, wm-ota, mcuboot, raw): parse every file as it, whatever its magic says.")
        var format: ImageFormat?

        @Argument(help: "Image files.")
        var files: [String]

        /// Images larger than this are hashed but not parsed (no device flash is this large).
        static let parseLimit = 512 << 20

        func run() throws {
            var failed = false
            for file in files {
                let report: ImageReport
                do {
                    report = try Self.inspect(file, as: format)
                } catch let error as InspectError {
                    Output.err("\(file): \(error.message)")
                    failed = true
                    continue
                }
                if json {
                    Output.out(Output.jsonLine(FileReport(file: file, report: report)))
                } else {
                    Output.out(Self.text(file, report))
                }
                if !report.valid {
                    failed = true
                    Output.err("\(file): \(report.problems.joined(separator: "; "))")
                }
            }
            if failed { throw ExitCode(1) }
        }

        struct InspectError: Error { let message: String }

        static func inspect(_ path: String, as format: ImageFormat?) throws -> ImageReport {
            let handle: FileHandle
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw InspectError(message: "cannot read: no such file")
            }
            guard !isDirectory.boolValue else { throw InspectError(message: "cannot read: is a directory") }
            do { handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)) } catch {
                throw InspectError(message: "cannot read: \((error as NSError).localizedDescription)")
            }
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()).map(Int.init) ?? 0
            try? handle.seek(toOffset: 0)
            if size <= parseLimit {
                let data: Data
                do { data = try handle.readToEnd() ?? Data() } catch {
                    throw InspectError(message: "cannot read: \((error as NSError).localizedDescription)")
                }
                return ImageInspector.inspect([UInt8](data), as: format)
            }
            // Too large to be firmware: hash it in chunks, detect from its head, report why.
            var hasher = SHA256()
            var head: [UInt8] = []
            while let chunk = try? handle.read(upToCount: 8 << 20), !chunk.isEmpty {
                if head.isEmpty { head = [UInt8](chunk.prefix(4096)) }
                hasher.update(data: chunk)
            }
            var report = ImageInspector.inspect(head[...], sha256: hexString(hasher.finalize()), as: format)
            report.size = size
            if report.format != .raw {
                report.valid = false
                report.problems = ["\(report.format.displayName) of \(size) bytes exceeds the \(parseLimit >> 20) MiB limit for firmware images"]
            } else {
                report.problems = []
                report.valid = true
            }
            return report
        }

        static func text(_ file: String, _ r: ImageReport) -> String {
            var lines = ["\(file): \(r.format.rawValue), \(r.size) bytes, \(r.valid ? "valid" : "INVALID")"]
            lines.append("  sha256 \(r.sha256)")
            var facts: [String] = []
            if let chip = r.chip { facts.append("chip \(chip)") }
            if let version = r.version { facts.append("version \(version)" + (r.versionScheme.map { " (\($0))" } ?? "")) }
            if let project = r.project { facts.append("project \(project)") }
            if let secure = r.secureVersion { facts.append("secure version \(secure)") }
            if let idf = r.idfVersion { facts.append("IDF \(idf)") }
            if let compressed = r.compressed {
                facts.append(compressed ? "\(r.details["compression"] ?? "")-compressed" : "uncompressed")
            }
            if !facts.isEmpty { lines.append("  " + facts.joined(separator: ", ")) }
            if let elf = r.elfSHA256 { lines.append("  elf sha256 \(elf)") }
            if !r.details.isEmpty {
                lines.append("  " + r.details.keys.sorted().map { "\($0)=\(r.details[$0]!)" }.joined(separator: " "))
            }
            for problem in r.problems { lines.append("  problem: \(problem)") }
            return lines.joined(separator: "\n")
        }
    }
}

/// `image inspect --json` line: the report plus the file it describes.
struct FileReport: Encodable {
    let file: String
    let report: ImageReport

    func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(file, forKey: .file)
    }

    enum Key: String, CodingKey { case file }
}

extension ImageFormat: ExpressibleByArgument {}
