import ArgumentParser
import Foundation
import OTAMeshGateway
import OTAMeshStore

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache", abstract: "Inspect and maintain the verified blob cache.",
        subcommands: [List.self, Add.self, Verify.self, GC.self, Pin.self, Unpin.self, Remove.self])

    /// Opens the store named by the options; errors become one line on stderr and exit 1.
    static func open(
        _ options: ConfigOptions, mode: BlobStore.Mode = .readWrite, extra: [(String, String?)] = [],
        flags: [String: String] = [:], command: String = "otamesh cache"
    ) throws -> BlobStore {
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
        } catch {
            Output.err("otamesh cache: \(error)")
            throw ExitCode(1)
        }
    }

    /// Runs a store operation, turning a StoreError into one stderr line and exit 1.
    static func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        try reporting("otamesh cache \(what)", body)
    }

    static func digest(_ text: String) throws -> BlobDigest {
        try run("") { try BlobDigest(hex: text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text) }
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

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a file to the cache, verifying it against --sha256/--size when given.",
            discussion: "An interrupted add of the same --sha256 resumes from the bytes already received.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Expected SHA-256 (64 hex digits); the add fails without a trace if the content differs.") var sha256: String?
        @Option(help: "Expected length in bytes.") var size: Int64?
        @Option(help: "Pin the blob under this label.") var pin: String?
        @Flag(help: "Print the result as JSON.") var json = false
        @Argument(help: "File to add.") var file: String

        func run() throws {
            if size != nil && sha256 == nil {
                Output.err("otamesh cache add: --size needs --sha256")
                throw ExitCode(2)
            }
            let expected = try sha256.map { ExpectedContent(digest: try CacheCommand.digest($0), size: size) }
            let store = try CacheCommand.open(options)
            let outcome = try CacheCommand.run("add \(file)") { try store.addFile(file, expected: expected) }
            let record = outcome.record
            if let pin { try CacheCommand.run("pin") { try store.pin(record.digest, label: pin) } }
            if json {
                let entry = CacheEntry(try CacheCommand.run("add") { try store.blob(record.digest) } ?? record)
                Output.out(Output.jsonLine(AddResult(blob: entry, alreadyPresent: outcome.alreadyPresent, resumedFrom: outcome.resumedBytes)))
            } else {
                var note = outcome.alreadyPresent ? "  (already present)" : ""
                if outcome.resumedBytes > 0 { note = "  (resumed from \(outcome.resumedBytes) bytes)" }
                Output.out("sha256:\(record.sha256)  \(record.size) bytes\(note)")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-hash every blob; quarantine any that changed on disk.")
        @OptionGroup var options: ConfigOptions

        func run() throws {
            let store = try CacheCommand.open(options)
            let report = try CacheCommand.run("verify") { try store.verify() }
            for digest in report.corrupt { Output.err("sha256:\(digest): content no longer matches its digest; quarantined") }
            for digest in report.missing { Output.err("sha256:\(digest): file missing; unlisted") }
            Output.out("verified \(report.checked) blobs (\(report.bytes) bytes): \(report.corrupt.count) corrupt, \(report.missing.count) missing")
            if !report.corrupt.isEmpty || !report.missing.isEmpty { throw ExitCode(1) }
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc", abstract: "Drop stale partials and evict unpinned blobs (least recently used first) down to the quota.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Quota for this run: bytes, 512MiB, 8GiB (default: the configured quota).") var quota: String?

        func run() throws {
            let store = try CacheCommand.open(options, extra: [("cache.quota", quota)], flags: ["cache.quota": "--quota"])
            let report = try CacheCommand.run("gc") { try store.collectGarbage() }
            for digest in report.evicted { Output.out("evicted sha256:\(digest)") }
            for id in report.stalePartials { Output.out("dropped partial \(id)") }
            Output.out("evicted \(report.evicted.count) blobs (\(report.evictedBytes) bytes), dropped \(report.stalePartials.count) partials")
        }
    }

    struct Pin: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pin a blob so eviction never removes it.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Pin label (e.g. a rollout id).") var label = "manual"
        @Argument(help: "Blob digest.") var digest: String

        func run() throws {
            let digest = try CacheCommand.digest(digest)
            let store = try CacheCommand.open(options)
            try CacheCommand.run("pin") { try store.pin(digest, label: label) }
        }
    }

    struct Unpin: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a pin (or, without --label, every pin) from a blob.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Pin label to remove.") var label: String?
        @Argument(help: "Blob digest.") var digest: String

        func run() throws {
            let digest = try CacheCommand.digest(digest)
            let store = try CacheCommand.open(options)
            try CacheCommand.run("unpin") { try store.unpin(digest, label: label) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove an unpinned blob.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Blob digest.") var digest: String

        func run() throws {
            let digest = try CacheCommand.digest(digest)
            let store = try CacheCommand.open(options)
            let removed = try CacheCommand.run("rm") { try store.remove(digest) }
            if !removed {
                Output.err("otamesh cache rm: sha256:\(digest) is pinned; unpin it first")
                throw ExitCode(1)
            }
        }
    }
}

/// `cache add --json` output.
struct AddResult: Encodable {
    let blob: CacheEntry
    let alreadyPresent: Bool
    let resumedFrom: Int64
}
