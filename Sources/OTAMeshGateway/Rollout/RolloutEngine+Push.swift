import Logging
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout

/// Push devices: each push the node asks for runs in the ``PushRunner`` and reports back.
extension RolloutEngine {
    /// Starts the push the node asked for (under the shell's lock); what the node says when it
    /// cannot start is returned to be carried out too.
    func startPush(rollout id: String, device: String, outcome: DeviceOutcome, node: inout RolloutNode) -> [RolloutDirective] {
        guard let record = registry.device(device), let adapter = adapters[record.family], let plan = node.view(id)?.plan,
            var image = image(plan.target)
        else {
            // Not cached yet (or the device left): the attempt waits, and times out if it never comes.
            return node.pushEnded(rollout: id, device: device, .notStarted, now: now())
        }
        let target: PushTarget
        do { target = try PushTarget(record, secrets: secrets) } catch {
            return node.pushEnded(rollout: id, device: device, .failed(PushFailure(.refused, error.description).description), now: now())
        }
        // A gateway listening on all interfaces names itself by its address on the device's segment.
        image.url = PushRoute.url(image.url, toward: target.host)
        let configure = plan.configuration && configurations != nil && Self.pushesFilesystem(record.family)
        let firmwareFirst = !configure || record.version != plan.target.version
        let started = pushes.submit { [self, image] in
            logger.info("rollout push started", metadata: ["rollout.id": "\(id)", "device.id": "\(device)", "device.family": "\(record.family)"])
            let end: RolloutNode.PushEnd
            let progress: @Sendable (DeviceOutcome.Phase) -> Void = { phase in
                let now = self.now()
                self.handle { node in node.pushProgress(rollout: id, device: device, phase: phase, now: now) }
            }
            do throws(PushFailure) {
                var version = record.version ?? "?"
                if firmwareFirst {
                    version = try await adapter.push(image, to: target, progress: progress)
                    registry.confirmed(device, version: version, variant: nil, answer: "pushed \(version) (rollout \(id))", at: Double(now()) / 1000)
                }
                if configure {
                    // Then its configuration, built for the version it now runs.
                    let configID = try await pushConfiguration(device, adapter: adapter, target: target, progress: progress)
                    registry.confirmed(
                        device, version: version, variant: nil, answer: "pushed \(version) and configuration \(configID) (rollout \(id))",
                        at: Double(now()) / 1000)
                }
                end = .confirmed(version: version)
            } catch {
                // Stopped by the agent's shutdown, not by the device: the attempt stays in
                // flight, and the next start takes it up again.
                end = Task.isCancelled ? .interrupted : .failed(error.description)
            }
            let now = now()
            handle { node in node.pushEnded(rollout: id, device: device, end, now: now) }
        }
        return started ? [] : node.pushEnded(rollout: id, device: device, .notStarted, now: now())
    }

    /// Families whose push adapter takes a configuration image (ArduinoOTA's filesystem
    /// command, 100).
    static func pushesFilesystem(_ family: DeviceFamily) -> Bool { family == .arduinoOTA }

    /// Builds the device's configuration image and pushes it; the config-id the device confirmed.
    func pushConfiguration(
        _ device: String, adapter: any PushAdapter, target: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void
    ) async throws(PushFailure) -> String {
        guard let configurations else { throw PushFailure(.refused, "configuration: this gateway builds no configuration images") }
        let offer = configurations.prepare(device)
        guard let blob = offer.blob, let configID = offer.configID else {
            throw PushFailure(.refused, "configuration: \(offer.problem ?? "no image")")
        }
        let image = PushImage(
            path: "configuration \(configID)", sha256: blob.sha256, length: blob.size, version: nil, file: configurations.file(sha256: blob.sha256),
            url: nil, configID: configID)
        _ = try await adapter.push(image, to: target, progress: progress)
        configurations.noteReported(device, configID: configID)
        return configID
    }

    /// Runs this gateway's pushes until the calling task is cancelled; then cancels those still
    /// running and returns once every one has ended (their attempts stay in flight for the next
    /// start). Without it, pushes queue and never run.
    public func runPushes() async {
        await pushes.run { [logger] running in
            guard running > 0 else { return }
            logger.info("stopping rollout pushes", metadata: ["pushes.running": "\(running)"])
        }
    }
}
