import Logging
import OTAMeshCommon
import OTAMeshGossip
import OTAMeshStore
import ServiceLifecycle

/// Gossips a summary of this gateway's devices (``DeviceSummaries``) every two seconds: only
/// what changed, at most ``DeviceSummaries/maxWritesPerTick`` records a tick.
struct DeviceSummaryService: Service {
    let mesh: Mesh
    let registry: DeviceRegistry
    let logger: Logger

    func run() async throws {
        let run = mesh.wallClock.now().microseconds
        await cancelWhenGracefulShutdown {
            var announced = false
            while !Task.isCancelled {
                announced = publish(run: run, announced: announced)
                do { try await Task.sleep(for: .seconds(2)) } catch { return }
            }
        }
    }

    /// One tick; once every device is republished, announces the run (once), so peers drop
    /// what this gateway wrote before it restarted. Returns whether the run is announced.
    func publish(run: UInt64, announced: Bool) -> Bool {
        // As written (bytes), so that a summary is rewritten only when it changed.
        let written = mesh.written(DeviceSummaryChannel.self)
        let published = Dictionary(uniqueKeysWithValues: written.filter { $0.key.hasPrefix("/") }.map { (DeviceSummaryChannel.key($0.key), $0.value) })
        var writes = DeviceSummaries.writes(devices: registry.all(), published: published, run: run)
        let caughtUp = writes.isEmpty
        if caughtUp && !announced { writes = [(DeviceSummaries.runKey, Array(String(run).utf8))] }
        guard !writes.isEmpty else { return announced }
        do { try mesh.put(all: writes) } catch {
            logger.error("cannot gossip device summaries", metadata: ["error": "\(error)"])
            return announced
        }
        return announced || caughtUp
    }
}

extension Mesh {
    /// Writes several of this gateway's records and gossips them in one go.
    func put(all entries: [(key: String, value: [UInt8])]) throws {
        let packets = try state.withLockedValue { state in
            let at = wallClock.now().seconds
            for entry in entries {
                let record = try state.put(entry.key, entry.value)
                state.arrivals["\(record.owner) \(record.key)"] = at
            }
            return state.node.gossipNow()
        }
        send(packets)
    }
}
