import Logging
import NIOCore
import OTAMeshStore
import OTAMeshTrust
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Runs the device listeners and their upkeep: once a second it writes the registry's
/// sightings, reads back assignments made by `otamesh device assign`, and reloads the serving
/// catalog when the store or the trusted targets changed; every ten seconds it writes the
/// batched blob access times (LRU).
public struct DeviceService: Service {
    let api: DeviceAPI
    let channels: [any Channel]
    let store: BlobStore
    let tufDirectory: String
    let logger: Logger

    init(api: DeviceAPI, channels: [any Channel], store: BlobStore, tufDirectory: String, logger: Logger) {
        self.api = api
        self.channels = channels
        self.store = store
        self.tufDirectory = tufDirectory
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var seen = CatalogStamp(generation: store.generation, metadata: Self.metadataStamp(tufDirectory))
            var ticks = 0
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(1)) } catch { break }
                ticks += 1
                upkeep(&seen, flushAccesses: ticks % 10 == 0)
            }
        }
        for channel in channels { try? await channel.close() }
        var last = CatalogStamp(generation: -1, metadata: [])
        upkeep(&last, flushAccesses: true)
    }

    struct CatalogStamp: Equatable {
        var generation: Int
        var metadata: [String]
    }

    func upkeep(_ seen: inout CatalogStamp, flushAccesses: Bool) {
        do { try api.registry.flush() } catch { logger.error("device registry flush failed", metadata: ["error": "\(error)"]) }
        do { try api.registry.reloadAssignments() } catch { logger.error("device registry read failed", metadata: ["error": "\(error)"]) }
        if flushAccesses {
            do { try store.flushAccesses() } catch { logger.error("cache access times not written", metadata: ["error": "\(error)"]) }
        }
        let now = CatalogStamp(generation: store.generation, metadata: Self.metadataStamp(tufDirectory))
        guard now != seen else { return }
        do {
            api.replaceCatalog(try ServingCatalog.load(store: store, tufDirectory: tufDirectory))
            seen = now
        } catch {
            logger.error("serving catalog reload failed", metadata: ["error": "\(error)"])
        }
    }

    /// Size and modification time of every metadata file in `tuf/`: changes when a sync or
    /// import saves new targets metadata.
    static func metadataStamp(_ directory: String) -> [String] {
        FileSystem.list(directory, regularFilesOnly: true).map { name in
            var info = stat()
            guard stat("\(directory)/\(name)", &info) == 0 else { return name }
            return "\(name):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }
    }
}
