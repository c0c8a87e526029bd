import Logging
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshGossip
import OTAMeshRollout
import OTAMeshTestSupport
import OTAMeshTrust
import Testing

@testable import OTAMeshGateway

/// The agent's rollout engine over in-memory records (no sockets): pull devices are answered
/// from the rollout state, downloads and reports move their outcomes, and a halt set on one
/// gateway stops new starts on another once the records meet.
@Suite("rollout engine")
struct RolloutEngineTests {
    /// One gateway's records; `sync(with:)` plays a full push-pull.
    final class MemoryStore: RolloutRecordStore, Sendable {
        let records: NIOLockedValueBox<ReplicatedRecords>
        let alive: Int
        init(owner: String, alive: Int = 2) {
            records = NIOLockedValueBox(ReplicatedRecords(owner: owner))
            self.alive = alive
        }
        func rolloutEntries() -> (entries: [RolloutRecords.Entry], versions: [String: UInt64]) {
            records.withLockedValue { records in
                (
                    records.records.map { RolloutRecords.Entry(key: $0.key, owner: $0.owner, value: $0.value) },
                    Dictionary(uniqueKeysWithValues: records.records.map { ("\($0.owner) \($0.key)", $0.version) })
                )
            }
        }
        func putRecord(_ key: String, _ value: [UInt8]) throws { records.withLockedValue { _ = $0.put(key, value) } }
        func aliveMembers() -> Set<String> { Set((0..<alive).map { "gw\($0 + 1)" }) }
        func sync(with other: MemoryStore) {
            let mine = records.withLockedValue { $0 }
            let theirs = other.records.withLockedValue { $0 }
            records.withLockedValue { $0.apply(theirs.delta(for: mine.digest(), maxRecords: .max)) }
            other.records.withLockedValue { $0.apply(mine.delta(for: theirs.digest(), maxRecords: .max)) }
        }
    }

    final class Clock: Sendable {
        let value = NIOLockedValueBox<Int64>(1_800_000_000_000)
        func advance(seconds: Int64) { value.withLockedValue { $0 += seconds * 1000 } }
        var now: Int64 { value.withLockedValue { $0 } }
    }

    /// Two admins of "test-site" (``SignedSite``), a shared clock and a directory for registries.
    struct Site {
        let signing: SignedSite
        let clock = Clock()
        let dir: TemporaryDirectory

        init(threshold: Int = 1) throws {
            signing = try SignedSite(site: "test-site", threshold: threshold)
            dir = try TemporaryDirectory()
        }

        var admins: [TUFSigner] { signing.admins }
        var trust: SiteTrust { signing.trust }

        /// A gateway's engine; `restarting` gives it the records and registry of an earlier one.
        func gateway(
            _ name: String, alive: Int = 2, adapters: [any PushAdapter] = [],
            pushLimits: PushQueue.Limits = .unlimited, restarting: (MemoryStore, DeviceRegistry)? = nil
        ) throws -> (RolloutEngine, MemoryStore, DeviceRegistry) {
            let store = restarting?.0 ?? MemoryStore(owner: name, alive: alive)
            let registry = try restarting?.1 ?? DeviceRegistry(path: dir.file("\(name).sqlite"))
            let clock = clock
            let engine = RolloutEngine(
                gateway: name, trust: trust, store: store, registry: registry, clock: WallClock { WallTime(milliseconds: clock.now) },
                logger: Logger(label: "test"), adapters: adapters,
                image: { PushImage(path: $0.path, sha256: $0.sha256, length: $0.length, version: $0.version, file: "/dev/null", url: nil) },
                pushLimits: pushLimits)
            return (engine, store, registry)
        }

        func plan(_ id: String = "r-0123456789ab", stages: [Int] = [100], maxFailures: Int? = 0, concurrency: Int = 10, soak: Int64 = 0) -> RolloutPlan {
            RolloutPlan(
                id: id, target: RolloutTarget(path: "esp32/app/2.0.0.bin", sha256: String(repeating: "ab", count: 32), length: 1000, version: "2.0.0"),
                selector: try! DeviceSelector(parsing: "hardware=esp32"), stages: stages, soakSeconds: soak, successPercent: 50,
                maxFailurePercent: nil, maxFailures: maxFailures, minFinished: 1, concurrency: concurrency, deviceTimeoutSeconds: 60)
        }

        /// Signs `plan` by the first admin and submits it to `engine` (threshold 1: approved).
        func start(_ plan: RolloutPlan, on engine: RolloutEngine) throws {
            _ = try engine.submit(try signed(plan.command(site: "test-site", issued: 1_800_000_000), by: [0]), rollout: nil)
        }

        /// Registers push devices of the held family, running 1.0.0, at `address(id)`.
        static func pushDevices(_ ids: [String], in registry: DeviceRegistry, address: (String) -> String) {
            for id in ids {
                registry.observe(
                    DeviceSighting(
                        id: id, family: DeviceFamily(rawValue: "held-push"), hardware: "esp32", version: "1.0.0", address: address(id), answer: ""), at: 1)
            }
        }

        func signed(_ command: SignedCommand, by signers: [Int]) throws -> [UInt8] {
            try signing.signed(command, by: signers).bytes
        }
    }

    static func query(_ id: String, version: String = "1.0.0", address: String) -> DeviceQuery {
        DeviceQuery(id: id, family: .generic, hardware: "esp32", version: version, address: address)
    }

    static func see(_ registry: DeviceRegistry, _ id: String, address: String) {
        registry.observe(DeviceSighting(id: id, family: .generic, hardware: "esp32", version: "1.0.0", address: address, answer: ""), at: 1)
    }

    @Test("a pull device is offered the target once the plan is approved, and succeeds when it reports the new version")
    func pullDeviceSucceeds() throws {
        let site = try Site(threshold: 2)
        let (engine, _, registry) = try site.gateway("gw1")
        Self.see(registry, "dev-1", address: "10.0.0.1")
        let plan = site.plan()
        try site.start(plan, on: engine)
        engine.upkeep(devices: [DeviceFacts(id: "dev-1", hardware: "esp32", gateway: "gw1")])
        #expect(engine.status(plan.id)?.mode == "awaiting approval")
        #expect(engine.status(plan.id)?.approvals == 1)
        #expect(engine.answer(Self.query("dev-1", address: "10.0.0.1")) == .none, "nothing is offered before the threshold of admins signed")

        // The second admin approves: same body, one more signature.
        let envelope = try #require(engine.envelope(plan.id, sequence: 1))
        var approved = try SignedCommand(bytes: envelope.bytes, file: "plan")
        try approved.sign(with: site.admins[1])
        _ = try engine.submit(approved.bytes, rollout: plan.id)
        engine.upkeep(devices: [DeviceFacts(id: "dev-1", hardware: "esp32", gateway: "gw1")])
        #expect(engine.status(plan.id)?.mode == "running")
        #expect(engine.status(plan.id)?.stages.first?.targeted == 1)

        #expect(engine.answer(Self.query("dev-1", address: "10.0.0.1")) == .offer(path: plan.target.path, rollout: plan.id))
        engine.transfer(sha256: plan.target.sha256, device: nil, address: "10.0.0.1", completed: false)
        #expect(engine.state(plan.id)?.0.outcomes["dev-1"]?.phase == .downloading)
        engine.transfer(sha256: plan.target.sha256, device: nil, address: "10.0.0.1", completed: true)
        #expect(engine.state(plan.id)?.0.outcomes["dev-1"]?.phase == .installing)
        // After the reboot it reports 2.0.0.
        if case .hold = engine.answer(Self.query("dev-1", version: "2.0.0", address: "10.0.0.1")) {
        } else {
            Issue.record("a device on the target is not offered it again")
        }
        #expect(engine.state(plan.id)?.0.outcomes["dev-1"]?.phase == .succeeded)
        engine.upkeep(devices: [DeviceFacts(id: "dev-1", hardware: "esp32", gateway: "gw1")])
        #expect(engine.status(plan.id)?.mode == "completed")
    }

    @Test("a gateway cut off 15 s before a stage is due, still seeing the others alive, does not advance; the connected majority does")
    func minorityCutBeforeDueDoesNotAdvance() throws {
        let site = try Site()
        let gateways = try ["gw1", "gw2", "gw3"].map { try site.gateway($0, alive: 3) }
        func sync(_ group: [Int]) {
            for a in group { for b in group where a < b { gateways[a].1.sync(with: gateways[b].1) } }
        }
        func upkeep(_ group: [Int]) { for index in group { gateways[index].0.upkeep(devices: []) } }
        let plan = site.plan(stages: [1, 100], soak: 60)
        _ = try gateways[0].0.submit(try site.signed(plan.command(site: "test-site", issued: 1_800_000_000), by: [0]), rollout: nil)
        for _ in 0..<3 {
            upkeep([0, 1, 2])
            sync([0, 1, 2])
        }
        #expect(gateways.allSatisfy { $0.0.status(plan.id)?.mode == "running" && $0.0.status(plan.id)?.stage == 0 })

        // 45 s into the 60 s soak all is well; then gw1 is cut off. SWIM would keep gw2 and gw3
        // alive in its view for up to its suspicion timeout, and every census it holds is theirs.
        site.clock.advance(seconds: 45)
        upkeep([0, 1, 2])
        sync([0, 1, 2])
        for _ in 0..<20 {
            site.clock.advance(seconds: 1)
            upkeep([0])
        }
        #expect(gateways[0].0.status(plan.id)?.stage == 0, "gw1 has no census from after the soak but its own")

        // The connected majority rewrites its census after the soak and advances.
        for _ in 0..<3 {
            upkeep([1, 2])
            sync([1, 2])
            site.clock.advance(seconds: 1)
        }
        #expect(gateways[1].0.status(plan.id)?.stage == 1 && gateways[2].0.status(plan.id)?.stage == 1)
        #expect(gateways[0].0.status(plan.id)?.stage == 0)

        // Healed, gw1 learns the advance.
        sync([0, 1, 2])
        upkeep([0])
        #expect(gateways[0].0.status(plan.id)?.stage == 1)
    }

    @Test("a plan signed by no site admin is refused; one signed by an unknown key too")
    func unsignedRefused() throws {
        let site = try Site()
        let (engine, _, _) = try site.gateway("gw1")
        let plan = site.plan()
        #expect(throws: RolloutEngine.SubmitError.self) { try engine.submit(plan.command(site: "test-site", issued: 1).bytes, rollout: nil) }
        var forged = plan.command(site: "test-site", issued: 1)
        try forged.sign(with: try KeyFile.generate(.ed25519))
        #expect(throws: RolloutEngine.SubmitError.self) { try engine.submit(forged.bytes, rollout: nil) }
        var otherSite = plan.command(site: "elsewhere", issued: 1)
        try otherSite.sign(with: site.admins[0])
        #expect(throws: RolloutEngine.SubmitError.self) { try engine.submit(otherSite.bytes, rollout: nil) }
        #expect(engine.statuses().isEmpty, "nothing refused reaches the records")
    }

    @Test("a device that rebooted into its old version fails, is not offered again, and the halt reaches the other gateway")
    func failureHaltsEverywhere() throws {
        let site = try Site()
        let (gw1, store1, registry1) = try site.gateway("gw1")
        let (gw2, store2, registry2) = try site.gateway("gw2")
        Self.see(registry1, "dev-1", address: "10.0.0.1")
        Self.see(registry2, "dev-2", address: "10.0.0.2")
        let plan = site.plan(maxFailures: 0)
        _ = try gw1.submit(try site.signed(plan.command(site: "test-site", issued: 1_800_000_000), by: [0]), rollout: nil)
        store1.sync(with: store2)
        gw1.upkeep(devices: [DeviceFacts(id: "dev-1", hardware: "esp32", gateway: "gw1")])
        gw2.upkeep(devices: [DeviceFacts(id: "dev-2", hardware: "esp32", gateway: "gw2")])
        store1.sync(with: store2)

        #expect(gw1.answer(Self.query("dev-1", address: "10.0.0.1")) == .offer(path: plan.target.path, rollout: plan.id))
        gw1.transfer(sha256: plan.target.sha256, device: nil, address: "10.0.0.1", completed: true)
        // The device asks again, still on 1.0.0: it rebooted into the old firmware.
        guard case .hold(let why) = gw1.answer(Self.query("dev-1", address: "10.0.0.1")) else {
            Issue.record("a failed device must not be offered the image again")
            return
        }
        #expect(why.contains("failed"))
        #expect(gw1.state(plan.id)?.0.outcomes["dev-1"]?.detail.contains("rebooted into 1.0.0") == true)
        gw1.upkeep(devices: [DeviceFacts(id: "dev-1", hardware: "esp32", gateway: "gw1")])
        #expect(gw1.status(plan.id)?.mode == "halted")

        // gw2 has not heard yet: it would still start dev-2. After the records meet, it does not.
        store1.sync(with: store2)
        gw2.upkeep(devices: [DeviceFacts(id: "dev-2", hardware: "esp32", gateway: "gw2")])
        #expect(gw2.status(plan.id)?.mode == "halted")
        guard case .hold(let held) = gw2.answer(Self.query("dev-2", address: "10.0.0.2")) else {
            Issue.record("no new device update may start after the halt is known")
            return
        }
        #expect(held.contains("halted"))
        #expect(gw2.state(plan.id)?.0.outcomes["dev-2"] == nil)
    }

    @Test("per-gateway concurrency: only that many devices start at once; an attempt that never confirms times out")
    func concurrencyAndTimeout() throws {
        let site = try Site()
        let (engine, _, registry) = try site.gateway("gw1", alive: 1)
        let devices = (0..<5).map { DeviceFacts(id: "dev-\($0)", hardware: "esp32", gateway: "gw1") }
        for device in devices { Self.see(registry, device.id, address: "10.0.1.\(device.id.last!)") }
        let plan = site.plan(maxFailures: 10, concurrency: 2)
        try site.start(plan, on: engine)
        engine.upkeep(devices: devices)
        let answers = devices.map { engine.answer(Self.query($0.id, address: "10.0.1.\($0.id.last!)")) }
        #expect(answers.filter { if case .offer = $0 { true } else { false } }.count == 2)
        site.clock.advance(seconds: 61)
        engine.upkeep(devices: devices)
        let failed = engine.state(plan.id)?.0.outcomes.values.filter { $0.phase == .failed } ?? []
        #expect(failed.count == 2 && failed.allSatisfy { $0.detail.contains("no confirmation within 60 s") })
        // Slots are free again.
        #expect(
            devices.compactMap { d -> Bool? in if case .offer = engine.answer(Self.query(d.id, address: "10.0.1.\(d.id.last!)")) { true } else { nil } }.count
                == 2)
    }

    /// A push family whose devices install and report what `reports` says.
    struct FakeAdapter: PushAdapter {
        let family = DeviceFamily(rawValue: "fake-push")
        let reports: @Sendable (String) -> String
        let pushed = NIOLockedValueBox<[String]>([])
        func push(_ image: PushImage, to device: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String {
            pushed.withLockedValue { $0.append(device.id) }
            progress(.downloading)
            progress(.installing)
            if device.id == "push-refuses" { throw PushFailure(.refused, "HTTP 400: variant esp32-eth is not compatible") }
            return reports(device.id)
        }
    }

    /// Runs `body` while the engine's pushes run, as ``RolloutService`` runs them, then stops them.
    static func withPushes(_ engine: RolloutEngine, _ body: () async throws -> Void) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await engine.runPushes() }
            defer { group.cancelAll() }
            try await body()
        }
    }

    @Test("push devices are queued for their adapter: success on the new version, failure on the old one or a refusal")
    func pushDevices() async throws {
        let site = try Site()
        let adapter = FakeAdapter(reports: { $0 == "push-old" ? "1.0.0" : "2.0.0" })
        let (engine, _, registry) = try site.gateway("gw1", alive: 1, adapters: [adapter])
        try await Self.withPushes(engine) {
            for id in ["push-ok", "push-old", "push-refuses"] {
                registry.observe(
                    DeviceSighting(id: id, family: DeviceFamily(rawValue: "fake-push"), hardware: "esp32", version: "1.0.0", address: "10.0.2.1", answer: ""),
                    at: 1
                )
            }
            let plan = site.plan(maxFailures: 10)
            try site.start(plan, on: engine)
            let facts = ["push-ok", "push-old", "push-refuses"].map { DeviceFacts(id: $0, hardware: "esp32", gateway: "gw1") }
            engine.upkeep(devices: facts)  // stage 0 begins
            engine.upkeep(devices: facts)  // pushes start
            // The pushes run as tasks: wait for their outcomes (deadline 10 s) without holding a thread.
            var finished = false
            for _ in 0..<1000 where !finished {
                finished = (engine.state(plan.id)?.0.outcomes.values.filter { $0.phase.isFinished }.count ?? 0) == 3
                if !finished { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(finished)
            let outcomes = engine.state(plan.id)?.0.outcomes ?? [:]
            #expect(outcomes["push-ok"]?.phase == .succeeded)
            #expect(outcomes["push-old"]?.phase == .failed && outcomes["push-old"]?.detail.contains("rebooted into 1.0.0") == true)
            #expect(outcomes["push-refuses"]?.phase == .failed && outcomes["push-refuses"]?.detail.contains("refused") == true)
            engine.upkeep(devices: facts)
            #expect(adapter.pushed.withLockedValue { $0.sorted() } == ["push-ok", "push-old", "push-refuses"], "each device is pushed once")
            // The registry learnt the version each push confirmed.
            #expect(registry.device("push-ok")?.version == "2.0.0" && registry.device("push-ok")?.lastAnswer?.contains("succeeded: 2.0.0") == true)
            #expect(registry.device("push-old")?.version == "1.0.0" && registry.device("push-refuses")?.version == "1.0.0")
        }
    }

    /// A push family whose pushes hold until released: to see how many run at once.
    struct HeldAdapter: PushAdapter {
        let family = DeviceFamily(rawValue: "held-push")
        /// Report the image as crossed (installing) before holding: the device "reboots".
        var crossed = false
        let running = NIOLockedValueBox<Set<String>>([])
        let started = NIOLockedValueBox<[String]>([])
        let released = NIOLockedValueBox(false)
        func push(_ image: PushImage, to device: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String {
            running.withLockedValue { _ = $0.insert(device.id) }
            started.withLockedValue { $0.append(device.id) }
            defer { running.withLockedValue { _ = $0.remove(device.id) } }
            progress(.downloading)
            if crossed { progress(.installing) }
            for _ in 0..<12_000 where !released.withLockedValue({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }  // 60 s at most
            return "2.0.0"
        }
    }

    /// Lets the held pushes finish; every device must succeed, each pushed once.
    static func releaseAll(_ adapter: HeldAdapter, engine: RolloutEngine, rollout: String, facts: [DeviceFacts]) async throws {
        adapter.released.withLockedValue { $0 = true }
        var done = false
        for _ in 0..<1000 where !done {
            engine.upkeep(devices: facts)
            done = (engine.state(rollout)?.0.outcomes.values.filter { $0.phase == .succeeded }.count ?? 0) == facts.count
            if !done { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(done, "every device is pushed in the end")
        #expect(adapter.started.withLockedValue { $0.sorted() } == facts.map(\.id).sorted(), "each once")
    }

    @Test("push limits hold across upkeeps: the gateway cap and the per-segment cap, segments taking turns")
    func pushLimits() async throws {
        let site = try Site()
        let adapter = HeldAdapter()
        let (engine, _, registry) = try site.gateway("gw1", alive: 1, adapters: [adapter], pushLimits: .init(maxConcurrent: 3, maxPerSegment: 2))
        try await Self.withPushes(engine) {
            let ids = (0..<5).map { "a\($0)" } + (0..<5).map { "b\($0)" }
            Site.pushDevices(ids, in: registry) { id in "\(id.hasPrefix("a") ? "10.0.1" : "10.0.2").\(id.last!)" }
            let plan = site.plan(maxFailures: 10, concurrency: 10)
            try site.start(plan, on: engine)
            let facts = ids.map { DeviceFacts(id: $0, hardware: "esp32", gateway: "gw1") }
            engine.upkeep(devices: facts)
            engine.upkeep(devices: facts)
            var seen = false
            for _ in 0..<1000 where !seen {
                seen = adapter.running.withLockedValue { $0.count } == 3
                if !seen { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(seen, "three pushes run: \(adapter.started.withLockedValue { $0 })")
            engine.upkeep(devices: facts)
            engine.upkeep(devices: facts)
            let running = adapter.running.withLockedValue { $0 }
            #expect(running.count == 3, "the gateway cap holds across upkeeps: \(running)")
            #expect(running.filter { $0.hasPrefix("a") }.count <= 2 && running.filter { $0.hasPrefix("b") }.count <= 2, "per segment: \(running)")
            #expect(!running.filter { $0.hasPrefix("a") }.isEmpty && !running.filter { $0.hasPrefix("b") }.isEmpty, "both segments progress: \(running)")

            try await Self.releaseAll(adapter, engine: engine, rollout: plan.id, facts: facts)
        }
    }

    @Test(
        "pushes whose image crossed leave their slot to the next device: the push limits count transfers, the rollout's concurrency every device in flight; each device once"
    )
    func crossedPushesFreeSlots() async throws {
        let site = try Site()
        var adapter = HeldAdapter()
        adapter.crossed = true
        let (engine, _, registry) = try site.gateway("gw1", alive: 1, adapters: [adapter], pushLimits: .init(maxConcurrent: 3, maxPerSegment: 2))
        try await Self.withPushes(engine) {
            let ids = (0..<10).map { "a\($0)" }
            Site.pushDevices(ids, in: registry) { id in "10.0.1.\(id.last!)" }
            let plan = site.plan(maxFailures: 10, concurrency: 6)
            try site.start(plan, on: engine)
            let facts = ids.map { DeviceFacts(id: $0, hardware: "esp32", gateway: "gw1") }
            var six = false
            for _ in 0..<1000 where !six {
                engine.upkeep(devices: facts)
                six = adapter.running.withLockedValue { $0.count } == 6
                if !six { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(six, "six devices rebooting at once though two may transfer per segment: \(adapter.started.withLockedValue { $0 })")
            for _ in 0..<5 { engine.upkeep(devices: facts) }
            #expect(adapter.running.withLockedValue { $0.count } == 6, "the rollout's concurrency of 6 still holds")

            try await Self.releaseAll(adapter, engine: engine, rollout: plan.id, facts: facts)
        }
    }

    @Test("a push device discovery could not find a version endpoint for (confirm=none) is left out of rollouts until the admin sets confirm=version")
    func unconfirmableLeftOut() async throws {
        let site = try Site()
        let adapter = HeldAdapter()
        adapter.released.withLockedValue { $0 = true }
        let (engine, _, registry) = try site.gateway("gw1", alive: 1, adapters: [adapter])
        try await Self.withPushes(engine) {
            registry.observe(
                DeviceSighting(
                    id: "blind", family: DeviceFamily(rawValue: "held-push"), hardware: "esp32", version: "1.0.0", address: "10.0.1.2", answer: "",
                    source: "mdns", options: ["confirm": "none"]), at: 1)
            registry.observe(
                DeviceSighting(
                    id: "seen", family: DeviceFamily(rawValue: "held-push"), hardware: "esp32", version: "1.0.0", address: "10.0.1.3", answer: "",
                    source: "mdns"), at: 1)
            let plan = site.plan(maxFailures: 10, concurrency: 10)
            try site.start(plan, on: engine)
            let facts = ["blind", "seen"].map { DeviceFacts(id: $0, hardware: "esp32", gateway: "gw1") }
            var done = false
            for _ in 0..<1000 where !done {
                engine.upkeep(devices: facts)
                done = engine.state(plan.id)?.0.outcomes["seen"]?.phase == .succeeded
                if !done { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(done)
            #expect(adapter.started.withLockedValue { $0 } == ["seen"] && engine.state(plan.id)?.0.outcomes["blind"] == nil)

            // The admin names the endpoint: the device takes part.
            var record = try #require(registry.device("blind"))
            record.options = DeviceRecord.encodeOptions(["confirm": "version", "version_port": "8080"])
            try registry.add(record)
            try registry.reloadAssignments()
            done = false
            for _ in 0..<1000 where !done {
                engine.upkeep(devices: facts)
                done = engine.state(plan.id)?.0.outcomes["blind"]?.phase == .succeeded
                if !done { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(done, "pushed once the admin set confirm=version")
        }
    }

    /// A push that holds until the device answers, and ends when cancelled, as the real
    /// adapters do (they fail with "push cancelled").
    struct AnsweringAdapter: PushAdapter {
        let family = DeviceFamily(rawValue: "held-push")
        let answered = NIOLockedValueBox(false)
        let running = NIOLockedValueBox<Set<String>>([])
        let started = NIOLockedValueBox<[String]>([])
        func push(_ image: PushImage, to device: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String {
            running.withLockedValue { _ = $0.insert(device.id) }
            started.withLockedValue { $0.append(device.id) }
            defer { running.withLockedValue { _ = $0.remove(device.id) } }
            progress(.downloading)
            for _ in 0..<12_000 where !answered.withLockedValue({ $0 }) {  // 60 s at most
                do { try await Task.sleep(for: .milliseconds(5)) } catch { throw PushFailure(.timeout, "push cancelled") }
            }
            return "2.0.0"
        }
    }

    @Test(
        "stopping the pushes waits until each has ended and counts no failure: the attempts stay in flight, and the next start takes them up and finishes them"
    )
    func stoppingPushesKeepsAttempts() async throws {
        let site = try Site()
        let adapter = AnsweringAdapter()
        let (engine, store, registry) = try site.gateway("gw1", alive: 1, adapters: [adapter])
        Site.pushDevices(["p1", "p2"], in: registry) { id in "10.0.1.\(id.last!)" }
        let plan = site.plan(maxFailures: 0, concurrency: 10)
        try site.start(plan, on: engine)
        let facts = ["p1", "p2"].map { DeviceFacts(id: $0, hardware: "esp32", gateway: "gw1") }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await engine.runPushes() }
            var both = false
            for _ in 0..<1000 where !both {
                engine.upkeep(devices: facts)
                both = adapter.running.withLockedValue { $0.count } == 2
                if !both { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(both, "both pushes run: \(adapter.started.withLockedValue { $0 })")
            group.cancelAll()  // the agent stops
        }
        // The runner returned only after both pushes had ended.
        #expect(adapter.running.withLockedValue { $0 }.isEmpty)
        let stopped = engine.state(plan.id)?.0.outcomes ?? [:]
        #expect(stopped.count == 2 && stopped.values.allSatisfy { !$0.phase.isFinished }, "still in flight, not failed: \(stopped)")
        engine.upkeep(devices: facts)
        #expect(engine.state(plan.id)?.1.halt == nil, "max-failures 0: one counted failure would have halted it")
        #expect(adapter.started.withLockedValue { $0.count } == 2, "a stopped gateway starts no push")

        // The next start: the same records and registry, a new engine.
        adapter.answered.withLockedValue { $0 = true }
        let (restarted, _, _) = try site.gateway("gw1", alive: 1, adapters: [adapter], restarting: (store, registry))
        try await Self.withPushes(restarted) {
            var done = false
            for _ in 0..<1000 where !done {
                restarted.upkeep(devices: facts)
                done = restarted.state(plan.id)?.0.outcomes.values.filter { $0.phase == .succeeded }.count == 2
                if !done { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(done, "taken up again and finished: \(String(describing: restarted.state(plan.id)?.0.outcomes))")
        }
        #expect(adapter.started.withLockedValue { $0.sorted() } == ["p1", "p1", "p2", "p2"])
    }

    @Test("push targets from registry records: port 80 by default, ArduinoOTA's 3232 / 8266 for arduino-ota")
    func pushTargetPorts() throws {
        func target(_ family: DeviceFamily, _ address: String, variant: String? = nil) throws -> PushTarget {
            try PushTarget(DeviceRecord(id: "d", family: family, address: address, firstSeen: 0, lastSeen: 0, variant: variant))
        }
        #expect(try target(.projectMM, "10.0.0.5").port == 80)
        #expect(try target(.arduinoOTA, "10.0.0.5").port == 3232)
        #expect(try target(.arduinoOTA, "10.0.0.5", variant: "esp8266").port == 8266)
        #expect(try target(.arduinoOTA, "10.0.0.5:3300", variant: "esp8266").port == 3300)
    }
}
