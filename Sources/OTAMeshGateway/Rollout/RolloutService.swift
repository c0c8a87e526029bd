import Logging
import OTAMeshRollout
import ServiceLifecycle

/// Runs the rollout engine's upkeep once a second (census, stage advances, halts, timeouts) and
/// owns its pushes' task group: a graceful shutdown ends the upkeep, then waits until every push
/// has stopped.
struct RolloutService: Service {
    let engine: RolloutEngine
    let registry: DeviceRegistry
    let gateway: String
    let metrics = RolloutMetrics()

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await engine.runPushes() }
                while !Task.isCancelled {
                    let records = registry.all()
                    engine.upkeep(devices: records.map { DeviceFacts($0, gateway: gateway) })
                    metrics.update(statuses: engine.statuses(), devices: records)
                    do { try await Task.sleep(for: .seconds(1)) } catch { break }
                }
            }
        }
    }
}

extension DeviceFacts {
    /// What rollouts know of a registry device served by `gateway`.
    init(_ record: DeviceRecord, gateway: String) {
        self.init(
            id: record.id, hardware: record.hardware, variant: record.variant, tags: Set(record.tagList), gateway: gateway,
            version: record.version, firstSeen: Int64(record.firstSeen * 1000))
    }
}
