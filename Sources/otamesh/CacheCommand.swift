import ArgumentParser
import Foundation
import OTAMeshCommon
import OTAMeshGateway
import OTAMeshStore

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache", abstract: "Inspect and maintain the verified blob cache.",
        discussion: "Changes (add, verify, gc, pin, unpin, rm) go through the running agent when one holds the data directory (or with --admin URL).",
        subcommands: [List.self, Add.self, Verify.self, GC.self, Pin.self, Unpin.self, Remove.self])

    /// Opens the store named by the options; errors become one line on stderr and exit 1.
    static func open(
        _ options: ConfigOptions, mode: BlobStore.Mode = .readWrite, extra: [(String, String?)] = [],
        flags: [String: String] = [:], command: String = "otamesh cache"
    ) throws -> BlobStore {
        guard let store = try open(options, mode: mode, extra: extra, flags: flags, command: command, unlessAgent: false) else { throw ExitCode(1) }
        return store
    }

    /// ``open(_:mode:extra:flags:command:)``, or nil when `unlessAgent` and an agent holds the
    /// data directory: the change then goes through the agent.
    static func open(
        _ options: ConfigOptions, mode: BlobStore.Mode = .readWrite, extra: [(String, String?)] = [],
        flags: [String: String] = [:], command: String = "otamesh cache", unlessAgent: Bool
    ) throws -> BlobStore? {
        let configuration = try options.load(extra: extra, flags: flags)
        // Reading never creates a data directory; say plainly that there is none.
        if mode == .readOnly, !FileManager.default.fileExists(atPath: "\(configuration.dataDirectory)/catalog.sqlite") {
            Output.err("\(command): no gateway data at \(configuration.dataDirectory): give --data-dir DIR of a gateway")
            throw ExitCode(1)
        }
        do {
            return try BlobStore(
                configuration: StoreConfiguration(
                    directory: configuration.dataDirectory, quotaBytes: configuration.cacheQuotaBytes,
                    partialMaxAge: configuration.partialMaxAge),
                mode: mode)
        } catch StoreError.locked where unlessAgent {
            return nil
        } catch {
            Output.err("otamesh cache: \(error)")
            throw ExitCode(1)
        }
    }

    /// Runs a store operation, turning a StoreError into one stderr line and exit 1.
    static func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        try reporting("otamesh cache \(what)", body)
    }

    /// Applies `change` — through the running agent when one holds the data directory (or
    /// `--admin URL` names a gateway), else directly — and prints what it did; exit 1 when it failed.
    static func apply(
        _ change: CacheChange, api: AdminOptions, command: String, extra: [(String, String?)] = [], flags: [String: String] = [:]
    )
        async throws
    {
        var via: String?
        let report: CacheChangeReport
        if api.admin == nil, let store = try open(api.config, extra: extra, flags: flags, command: command, unlessAgent: true) {
            report = try reporting(command) { try CacheChanges.apply(change, to: store) }
        } else {
            let client = try reporting(command) { try api.client() }
            via = client.base
            report = try await reporting(command) {
                let answer = try await client.post(
                    "cache/changes", body: Array(try JSONEncoder().encode(change)), contentType: "application/json", timeout: 600)
                return try client.decode(CacheChangeReport.self, answer, what: "POST /api/v1/cache/changes")
            }
        }
        for line in report.lines { Output.out(line) }
        for problem in report.problems { Output.err(problem) }
        if let via { Output.out("(through the running agent at \(via))") }
        if report.failed { throw ExitCode(1) }
    }

    static func digest(_ text: String) throws -> BlobDigest {
        try reporting("otamesh cache") { try BlobDigest(hex: text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text) }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List committed blobs (and partials in flight).")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "One JSON object per blob, one per line.") var json = false

        func run() throws {
            let store = try CacheCommand.open(options, mode: .readOnly, command: "otamesh cache ls")
            let blobs = try CacheCommand.run("ls") { try store.list() }
            for blob in blobs {
                if json {
                    Output.out(Output.jsonLine(CacheEntry(blob)))
                } else {
                    let pins = blob.pins.isEmpty ? "" : "  pinned: \(blob.pins.joined(separator: ","))"
                    Output.out("sha256:\(blob.sha256)  \(blob.size) bytes\(pins)")
                }
            }
            if !json {
                let partials = try CacheCommand.run("ls") { try store.partials() }
                for partial in partials {
                    let size = try? FileManager.default.attributesOfItem(atPath: "\(store.configuration.directory)/partial/\(partial.id)")[.size]
                    Output.out("partial \(partial.id)  \(size.map { "\($0)" } ?? "0")/\(partial.expectedSize.map(String.init) ?? "?") bytes")
                }
                let totals = try CacheCommand.run("ls") { try store.totals() }
                Output.out("\(totals.count) blobs, \(totals.bytes) bytes")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a file to the cache, verifying it against --sha256/--size when given.",
            discussion: """
                An interrupted add of the same --sha256 resumes from the bytes already received. While an agent runs on the data \
                directory (or with --admin URL), the file goes to it through its admin API (POST /api/v1/cache/blobs).
                """)
        @OptionGroup var api: AdminOptions
        @Option(help: "Expected SHA-256 (64 hex digits); the add fails without a trace if the content differs.") var sha256: String?
        @Option(help: "Expected length in bytes.") var size: Int64?
        @Option(help: "Pin the blob under this label.") var pin: String?
        @Flag(help: "Print the result as JSON.") var json = false
        @Argument(help: "File to add.") var file: String

        func run() async throws {
            if size != nil && sha256 == nil {
                Output.err("otamesh cache add: --size needs --sha256")
                throw ExitCode(2)
            }
            let expected = try sha256.map { ExpectedContent(digest: try CacheCommand.digest($0), size: size) }
            let command = "otamesh cache add \(file)"
            var via: String?
            let result: CacheAddResult
            if api.admin == nil, let store = try CacheCommand.open(api.config, command: command, unlessAgent: true) {
                let outcome = try CacheCommand.run("add \(file)") { try store.addFile(file, expected: expected) }
                let record = outcome.record
                if let pin { try CacheCommand.run("pin") { try store.pin(record.digest, label: pin) } }
                let entry = CacheEntry(try CacheCommand.run("add") { try store.blob(record.digest) } ?? record)
                result = CacheAddResult(blob: entry, alreadyPresent: outcome.alreadyPresent, resumedFrom: outcome.resumedBytes)
            } else {
                let bytes = try reporting(command) {
                    let length = try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int ?? 0
                    guard length <= CacheChanges.maxUploadBytes else { throw CacheChanges.TooLarge(file: file) }
                    return try Array(Data(contentsOf: URL(fileURLWithPath: file)))
                }
                let client = try reporting(command) { try api.client() }
                via = client.base
                var query: [String] = []
                if let expected { query.append("sha256=\(expected.digest.hex)") }
                if let size { query.append("size=\(size)") }
                if let pin { query.append("pin=\(PercentEncoding.encode(pin))") }
                let path = "cache/blobs" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
                result = try await reporting(command) {
                    let answer = try await client.post(path, body: bytes, contentType: "application/octet-stream", timeout: 600)
                    return try client.decode(CacheAddResult.self, answer, what: "POST /api/v1/cache/blobs")
                }
            }
            if json {
                Output.out(Output.jsonLine(result))
            } else {
                var note = result.alreadyPresent ? "  (already present)" : ""
                if result.resumedFrom > 0 { note = "  (resumed from \(result.resumedFrom) bytes)" }
                Output.out("sha256:\(result.blob.sha256)  \(result.blob.size) bytes\(note)")
            }
            if let via { Output.out("(through the running agent at \(via))") }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-hash every blob; quarantine any that changed on disk.")
        @OptionGroup var api: AdminOptions

        func run() async throws {
            try await CacheCommand.apply(.verify, api: api, command: "otamesh cache verify")
        }
    }

    struct GC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc", abstract: "Drop stale partials and evict unpinned blobs (least recently used first) down to the quota.")
        @OptionGroup var api: AdminOptions
        @Option(help: "Quota for this run: bytes, 512MiB, 8GiB (default: the configured quota).") var quota: String?

        func run() async throws {
            let extra = [("cache.quota", quota)]
            let flags = ["cache.quota": "--quota"]
            let bytes = try quota == nil ? nil : reporting("otamesh cache gc") { try api.config.load(extra: extra, flags: flags).cacheQuotaBytes }
            try await CacheCommand.apply(.collectGarbage(quotaBytes: bytes), api: api, command: "otamesh cache gc", extra: extra, flags: flags)
        }
    }

    struct Pin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pin a blob so eviction never removes it.")
        @OptionGroup var api: AdminOptions
        @Option(help: "Pin label (e.g. a rollout id).") var label = "manual"
        @Argument(help: "Blob digest.") var digest: String

        func run() async throws {
            let digest = try CacheCommand.digest(digest)
            try await CacheCommand.apply(.pin(sha256: digest.hex, label: label), api: api, command: "otamesh cache pin")
        }
    }

    struct Unpin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a pin (or, without --label, every pin) from a blob.")
        @OptionGroup var api: AdminOptions
        @Option(help: "Pin label to remove.") var label: String?
        @Argument(help: "Blob digest.") var digest: String

        func run() async throws {
            let digest = try CacheCommand.digest(digest)
            try await CacheCommand.apply(.unpin(sha256: digest.hex, label: label), api: api, command: "otamesh cache unpin")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove an unpinned blob.")
        @OptionGroup var api: AdminOptions
        @Argument(help: "Blob digest.") var digest: String

        func run() async throws {
            let digest = try CacheCommand.digest(digest)
            try await CacheCommand.apply(.remove(sha256: digest.hex), api: api, command: "otamesh cache rm")
        }
    }
}
