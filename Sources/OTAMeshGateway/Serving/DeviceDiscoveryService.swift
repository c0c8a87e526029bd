import Foundation
import Logging
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshDiscovery
import ServiceLifecycle

/// Finds push devices on the gateway's device segments: browses the service types the families
/// announce (``DeviceProbe/serviceTypes``) through avahi-daemon, resolves each instance's host,
/// probes it (``DeviceProbe``) and records what it is in the device registry, so rollouts can
/// push to it. Probes again every ``reprobeInterval`` and when the announcement changes, which
/// keeps versions current after updates made elsewhere.
struct DeviceDiscoveryService: Service {
    static let reprobeInterval: Duration = .seconds(30)

    let registry: DeviceRegistry
    let logger: Logger
    /// Discovered devices are dated off it.
    let clock: WallClock
    let resolver = AvahiHostResolver()

    func run() async throws {
        let (events, continuation) = AsyncStream.makeStream(of: ServiceDiscovery.Event.self, bufferingPolicy: .bufferingNewest(4096))
        let discovery = ServiceDiscovery(types: DeviceProbe.serviceTypes, logger: logger)
        let known = KnownServices()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    // The callback runs on discovery's own thread: only hand the event over.
                    await discovery.run { continuation.yield($0) }
                    continuation.finish()
                }
                group.addTask {
                    for await event in events {
                        switch event {
                        case .found(let service):
                            await known.set(service)
                            await probe(service)
                        case .removed(let type, let name):
                            await known.remove(type: type, name: name)
                            logger.info("device discovery: announcement withdrawn", metadata: ["mdns.type": "\(type)", "mdns.instance": "\(name)"])
                        case .registered:
                            break  // announces nothing
                        }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: Self.reprobeInterval)
                        for service in await known.all() where !Task.isCancelled { await probe(service) }
                    }
                }
            }
        }
    }

    /// Resolves, probes and records one announced service (failures are logged, never thrown).
    func probe(_ announced: ResolvedService) async {
        let metadata: Logger.Metadata = ["mdns.type": "\(announced.type)", "mdns.instance": "\(announced.name)"]
        let address: String
        switch await resolver.address(of: announced.host) {
        case .success(let found): address = found
        case .failure(let failure):
            logger.warning("device discovery: \(failure)", metadata: metadata)
            return
        }
        let service = DeviceProbe.Service(type: announced.type, name: announced.name, address: address, port: Int(announced.port), txt: announced.txt)
        let answers = await DeviceProbe.fetch(DeviceProbe.requests(for: service), address: address)
        switch DeviceProbe.classify(service, answers: answers) {
        case .success(let device):
            let before = registry.device(device.id)
            registry.observe(
                DeviceSighting(
                    id: device.id, family: device.family, hardware: device.hardware, version: device.version,
                    address: device.address, answer: "discovered: \(device.note)", variant: device.variant,
                    source: "mdns", options: device.options),
                at: clock.now().seconds)
            if before == nil || before?.version != device.version || before?.address != device.address {
                logger.info(
                    "device discovery: found a push device",
                    metadata: metadata.merging([
                        "device.id": "\(device.id)", "device.family": "\(device.family)", "device.address": "\(device.address)",
                        "device.version": "\(device.version ?? "?")", "device.variant": "\(device.variant ?? "?")",
                    ]) { a, _ in a })
            }
        case .failure(let ignored):
            logger.debug("device discovery: ignoring \(ignored)", metadata: metadata)
        }
    }
}

/// The services currently announced, by type and instance name.
actor KnownServices {
    private var services: [String: ResolvedService] = [:]
    func set(_ service: ResolvedService) { services["\(service.type) \(service.name)"] = service }
    func remove(type: String, name: String) { services["\(type) \(name)"] = nil }
    func all() -> [ResolvedService] { Array(services.values) }
}
