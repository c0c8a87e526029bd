import Logging
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import OTAMeshTestSupport
import OTAMeshTrust
import Testing

@testable import OTAMeshGateway

/// The engine's side of the lifecycle: completed rollouts keep to themselves, the newest rollout
/// governs, nothing starts without the image, admission, and events for alerts.
@Suite("rollout engine lifecycle")
struct RolloutLifecycleEngineTests {
    typealias E = RolloutEngineTests

    static let v3 = RolloutTarget(path: "esp32/app/3.0.0.bin", sha256: String(repeating: "cd", count: 32), length: 1000, version: "3.0.0")

    static func engine(
        _ site: E.Site, catalog: (@Sendable () -> ServingCatalog?)? = nil, admission: DeviceAdmission = .open,
        events: @escaping @Sendable ([RolloutEvent]) -> Void = { _ in }
    ) throws -> (RolloutEngine, DeviceRegistry) {
        let registry = try DeviceRegistry(path: site.dir.file("gw1-\(UInt32.random(in: 0 ... .max)).sqlite"))
        let clock = site.clock
        let engine = RolloutEngine(
            gateway: "gw1", trust: site.trust, store: E.MemoryStore(owner: "gw1", alive: 1), registry: registry,
            clock: WallClock { WallTime(milliseconds: clock.now) }, logger: Logger(label: "test"), catalog: catalog ?? { nil }, events: events,
            admission: admission)
        return (engine, registry)
    }

    static func start(_ engine: RolloutEngine, _ site: E.Site, _ plan: RolloutPlan, issued: Int64) throws {
        _ = try engine.submit(try site.signed(plan.command(site: "test-site", issued: issued), by: [0]), rollout: nil)
    }

    static func see(_ registry: DeviceRegistry, _ id: String, version: String = "1.0.0", at seconds: Double) {
        registry.observe(DeviceSighting(id: id, family: .generic, hardware: "esp32", version: version, address: "10.0.0.\(id.count)", answer: ""), at: seconds)
    }

    static func facts(_ registry: DeviceRegistry) -> [DeviceFacts] {
        registry.all().map { DeviceFacts(id: $0.id, hardware: $0.hardware, gateway: "gw1", version: $0.version, firstSeen: Int64($0.firstSeen * 1000)) }
    }

    @Test("a completed rollout takes no device seen later; a newer rollout governs every device it covers")
    func completedThenNewer() throws {
        let site = try E.Site()
        let (engine, registry) = try Self.engine(site)
        let now = { Double(site.clock.now) / 1000 }
        Self.see(registry, "dev-1", at: now() - 60)
        let r1 = site.plan("r-00000000000a")
        try Self.start(engine, site, r1, issued: site.clock.now / 1000)
        engine.upkeep(devices: Self.facts(registry))
        #expect(engine.answer(E.query("dev-1", address: "10.0.0.5")) == .offer(path: r1.target.path, rollout: r1.id))
        #expect(engine.answer(E.query("dev-1", version: "2.0.0", address: "10.0.0.5")) == .hold("rollout \(r1.id): runs \(r1.target.path)"))
        site.clock.advance(seconds: 5)
        engine.upkeep(devices: Self.facts(registry))
        #expect(registry.device("dev-1")?.lastAnswer == "rollout \(r1.id): succeeded: 2.0.0", "otamesh devices shows the outcome")
        let done = try #require(engine.status(r1.id))
        #expect(done.mode == "completed" && done.completion?.succeeded == 1, "\(done)")

        // A device first seen now is not taken by the completed rollout, and the census stays.
        Self.see(registry, "dev-2", at: now())
        #expect(engine.answer(E.query("dev-2", address: "10.0.0.6")) == .none)
        site.clock.advance(seconds: 5)
        engine.upkeep(devices: Self.facts(registry))
        #expect(engine.status(r1.id)?.mode == "completed")
        #expect(engine.status(r1.id)?.stages.last?.targeted == 1)

        // A newer rollout covers both: it governs them, whatever the older ones say.
        var r2 = site.plan("r-00000000000b")
        r2.target = Self.v3
        try Self.start(engine, site, r2, issued: site.clock.now / 1000)
        site.clock.advance(seconds: 1)
        engine.upkeep(devices: Self.facts(registry))
        #expect(engine.answer(E.query("dev-2", address: "10.0.0.6")) == .offer(path: r2.target.path, rollout: r2.id))
        #expect(engine.answer(E.query("dev-1", version: "2.0.0", address: "10.0.0.5")) == .offer(path: r2.target.path, rollout: r2.id))
        #expect(engine.status(r2.id)?.stages.last?.targeted == 2)
    }

    @Test("of two running rollouts the newer governs; the older releases the device and stops counting it")
    func newerGoverns() throws {
        let site = try E.Site()
        let (engine, registry) = try Self.engine(site)
        Self.see(registry, "dev-1", at: Double(site.clock.now) / 1000 - 60)
        Self.see(registry, "dev-2", at: Double(site.clock.now) / 1000 - 60)
        let r1 = site.plan("r-00000000000a")
        try Self.start(engine, site, r1, issued: site.clock.now / 1000)
        engine.upkeep(devices: Self.facts(registry))
        // dev-1 starts under r1; then r2 arrives.
        #expect(engine.answer(E.query("dev-1", address: "10.0.0.5")) == .offer(path: r1.target.path, rollout: r1.id))
        var r2 = site.plan("r-00000000000b")
        r2.target = Self.v3
        try Self.start(engine, site, r2, issued: site.clock.now / 1000 + 1)
        engine.upkeep(devices: Self.facts(registry))
        // The attempt in flight finishes under r1; dev-2 goes to r2.
        #expect(engine.answer(E.query("dev-1", address: "10.0.0.5")) == .offer(path: r1.target.path, rollout: r1.id))
        #expect(engine.answer(E.query("dev-2", address: "10.0.0.6")) == .offer(path: r2.target.path, rollout: r2.id))
        #expect(engine.status(r1.id)?.stages.last?.targeted == 1, "r1 counts only the device it started")
    }

    @Test("a device already on the target counts as succeeded from its last report, without asking again")
    func alreadyCurrentFromRegistry() throws {
        let site = try E.Site()
        let (engine, registry) = try Self.engine(site)
        Self.see(registry, "dev-1", version: "2.0.0", at: Double(site.clock.now) / 1000 - 60)
        let plan = site.plan()
        try Self.start(engine, site, plan, issued: site.clock.now / 1000)
        engine.upkeep(devices: Self.facts(registry))
        engine.upkeep(devices: Self.facts(registry))
        #expect(engine.state(plan.id)?.0.outcomes["dev-1"]?.phase == .succeeded)
    }

    @Test("a gateway without the target in its trusted metadata or cache starts no device")
    func noImageNoStart() throws {
        let site = try E.Site()
        let (engine, registry) = try Self.engine(site, catalog: { ServingCatalog() })
        Self.see(registry, "dev-1", at: 1)
        let plan = site.plan()
        try Self.start(engine, site, plan, issued: site.clock.now / 1000)
        engine.upkeep(devices: Self.facts(registry))
        guard case .hold(let why) = engine.answer(E.query("dev-1", address: "10.0.0.5")) else {
            Issue.record("offered an image this gateway does not hold")
            return
        }
        #expect(why.contains("not ready on this gateway"))
        #expect(engine.state(plan.id)?.0.outcomes["dev-1"] == nil, "no attempt was recorded")
        #expect(engine.preview(plan).warnings.contains { $0.contains("does not hold") })
    }

    @Test("with admission known, a device that only asked waits as pending until an admin accepts it")
    func admissionKnown() throws {
        let site = try E.Site()
        let (engine, registry) = try Self.engine(site, admission: .known)
        Self.see(registry, "dev-1", at: 1)
        let plan = site.plan()
        try Self.start(engine, site, plan, issued: site.clock.now / 1000)
        engine.upkeep(devices: Self.facts(registry))
        #expect(
            engine.answer(E.query("dev-1", address: "10.0.0.5"))
                == .hold("pending admission (devices.admission: known): an admin runs `otamesh device accept dev-1`"))
        #expect(engine.status(plan.id)?.stages.last?.targeted == 0, "a pending device is not counted")
        #expect(try registry.accept("dev-1"))
        #expect(try !registry.accept("dev-unknown"))
        #expect(engine.answer(E.query("dev-1", address: "10.0.0.5")) == .offer(path: plan.target.path, rollout: plan.id))
    }

    @Test("approval, halt and completion are announced once each, not what was there at start")
    func events() throws {
        let site = try E.Site()
        let seen = NIOLockedValueBox<[RolloutEvent]>([])
        let (engine, registry) = try Self.engine(site, events: { events in seen.withLockedValue { $0 += events } })
        Self.see(registry, "dev-1", at: 1)
        engine.upkeep(devices: Self.facts(registry))  // the baseline: nothing yet
        let plan = site.plan()
        try Self.start(engine, site, plan, issued: site.clock.now / 1000)
        engine.upkeep(devices: Self.facts(registry))
        engine.upkeep(devices: Self.facts(registry))
        #expect(seen.withLockedValue { $0.map(\.kind) } == [.approved])
        #expect(engine.halt(plan.id, reason: "boot loops"))
        engine.upkeep(devices: Self.facts(registry))
        let events = seen.withLockedValue { $0 }
        #expect(events.map(\.kind) == [.approved, .halted])
        #expect(events.last?.id == "\(plan.id)/halted/1" && events.last?.detail.contains("boot loops") == true)
    }

    @Test("a preview counts the devices other gateways gossip, by their tags too, at the gateway that saw them")
    func sitePreview() throws {
        let site = try E.Site()
        let (engine, registry) = try Self.engine(site)
        Self.see(registry, "dev-1", at: 1)
        var record = DeviceRecord(id: "dev-9", family: .generic, hardware: "esp32", version: "1.0.0", address: "10.0.1.9", firstSeen: 1, lastSeen: 600)
        record.tags = "floor2"
        // As another gateway's dv/ record carries it, through encode and decode.
        let value = try #require(DeviceSummaries.encode(DeviceSummary(record)))
        let merged = DeviceSummaries.merge(gateway: "gw1", local: registry.all(), remote: [(owner: "gw2", key: "dv/dev-9", value: value)])
        #expect(merged.first { $0.id == "dev-9" }?.tags == "floor2")
        var plan = site.plan()
        plan.selector = try DeviceSelector(parsing: "tag=floor2")
        let preview = engine.preview(plan, site: merged)
        #expect(preview.devices == 2 && preview.matching == 1)
        #expect(preview.gateways["gw2"] == [1] && preview.gateways["gw1"] == [0])
    }
}
