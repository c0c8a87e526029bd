import Logging
import NIOCore
import OTAMeshStore
import OTAMeshTrust
import ServiceLifecycle

/// Runs the device listeners and their upkeep: once a second it writes the registry's
/// sightings; every ten seconds the batched blob access times (LRU). Devices are served from the
/// release catalog's newest value, taken as soon as it changes. Admin changes reach the registry
/// in memory as they are made (`otamesh device …` goes through this agent's admin API while it
/// runs), so nothing re-reads the database.
public struct DeviceService: Service {
    let api: DeviceAPI
    let channels: [any Channel]
    let store: BlobStore
    let releases: ReleaseCatalog
    let logger: Logger

    init(api: DeviceAPI, channels: [any Channel], store: BlobStore, releases: ReleaseCatalog, logger: Logger) {
        self.api = api
        self.channels = channels
        self.store = store
        self.releases = releases
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await catalog in releases.changes() { api.replaceCatalog(catalog) }
                }
                var ticks = 0
                while !Task.isCancelled {
                    do { try await Task.sleep(for: .seconds(1)) } catch { break }
                    ticks += 1
                    upkeep(flushAccesses: ticks % 10 == 0)
                }
                group.cancelAll()
            }
        }
        for channel in channels { try? await channel.close() }
        upkeep(flushAccesses: true)
    }

    func upkeep(flushAccesses: Bool) {
        do { try api.registry.flush() } catch { logger.error("device registry flush failed", metadata: ["error": "\(error)"]) }
        if flushAccesses {
            do { try store.flushAccesses() } catch { logger.error("cache access times not written", metadata: ["error": "\(error)"]) }
        }
    }
}
