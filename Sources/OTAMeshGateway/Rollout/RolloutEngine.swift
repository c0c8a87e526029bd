import Logging
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import OTAMeshTrust

/// Carries out rollouts on this gateway (ARCHITECTURE.md, flow steps 3–5): reads the merged
/// rollout state from the mesh's records, answers device requests from it, writes this
/// gateway's outcomes, census, stage advances and halts back as records. Decisions are the pure
/// ``RolloutView``'s; this class only keeps the cache and does the I/O.
public final class RolloutEngine: DeviceRollouts, Sendable {
    public let gateway: String
    public let trust: SiteTrust
    let store: any RolloutRecordStore
    let registry: DeviceRegistry
    /// Dates of records and outcomes (milliseconds).
    let clock: WallClock
    func now() -> Int64 { clock.now().milliseconds }
    let logger: Logger
    /// Push adapters by device family, and where a verified blob lives (nil: not cached).
    let adapters: [DeviceFamily: any PushAdapter]
    let image: @Sendable (RolloutTarget) -> PushImage?
    /// Push devices' credentials (nil: none configured).
    let secrets: DeviceSecretStore?
    /// Simultaneous pushes of this gateway, all rollouts together, and per segment.
    let pushLimits: PushQueue.Limits
    /// What this gateway trusts and holds (nil: not known, every target counts as ready —
    /// for tests without a store).
    let catalog: @Sendable () -> ServingCatalog?
    /// Where rollout events go (approved, halted, completed, aborted): the webhook notifier.
    let events: @Sendable ([RolloutEvent]) -> Void
    /// `known`: only devices an admin added or accepted take part in rollouts.
    let admission: DeviceAdmission

    struct Cached {
        var decoded = RolloutRecords.Decoded()
        var views: [String: RolloutView] = [:]
        var cache = VerificationCache()
        /// Bumped after each write of this gateway lands in the store; `applied` is the generation
        /// the cached state was read at. A refresh that began before a write landed cannot hide it.
        var generation: UInt64 = 1
        var applied: UInt64 = 0
        /// What this gateway last wrote, so unchanged values are not rewritten.
        var written: [String: [UInt8]] = [:]
        /// Halts already logged, by rollout.
        var haltsSeen: [String: HaltMark] = [:]
        /// Pushes running in this process, by "rollout device": the device's segment.
        var pushing: [String: String] = [:]
        /// Each rollout's milestones at the last upkeep (nil until the first: what was already
        /// there at start is not announced again).
        var milestones: [String: RolloutEvent.Milestones]?
        /// Those of them whose image has crossed (the device reported `installing`): they wait
        /// for the reboot and use no bandwidth, so the push limits no longer count them.
        var transferred: Set<String> = []
    }
    let cached = NIOLockedValueBox(Cached())
    /// Where this gateway's pushes run; ``runPushes()`` (``RolloutService``) drives it.
    let pushes = PushRunner()
    /// Serialises decide-then-record, so simultaneous requests cannot both take the last
    /// concurrency slot (the mesh's lock is only ever taken inside it, never around it).
    let starting = NIOLock()

    public init(
        gateway: String, trust: SiteTrust, store: any RolloutRecordStore, registry: DeviceRegistry,
        clock: WallClock, logger: Logger, adapters: [any PushAdapter] = [],
        image: @escaping @Sendable (RolloutTarget) -> PushImage? = { _ in nil }, secrets: DeviceSecretStore? = nil,
        pushLimits: PushQueue.Limits = .unlimited, catalog: @escaping @Sendable () -> ServingCatalog? = { nil },
        events: @escaping @Sendable ([RolloutEvent]) -> Void = { _ in }, admission: DeviceAdmission = .open
    ) {
        self.admission = admission
        self.catalog = catalog
        self.events = events
        self.adapters = Dictionary(adapters.map { ($0.family, $0) }, uniquingKeysWith: { first, _ in first })
        self.image = image
        self.secrets = secrets
        self.pushLimits = pushLimits
        self.gateway = gateway
        self.trust = trust
        self.store = store
        self.registry = registry
        self.clock = clock
        self.logger = logger
    }

    // MARK: State

    /// Re-reads the records when something changed (or on every upkeep tick).
    func refresh(force: Bool = false) {
        let (needed, generation) = cached.withLockedValue { ($0.applied != $0.generation, $0.generation) }
        guard needed || force else { return }
        let (entries, versions) = store.rolloutEntries()
        let decoded = RolloutRecords.decode(entries, versions: versions)
        cached.withLockedValue { cached in
            // A concurrent refresh that read after more writes landed keeps its newer state.
            guard generation >= cached.applied else { return }
            cached.applied = generation
            cached.decoded = decoded
            var views: [String: RolloutView] = [:]
            for (id, state) in decoded.rollouts { views[id] = RolloutView(state: state, trust: trust, cache: &cached.cache) }
            cached.views = views
        }
    }

    public func state(_ id: String) -> (RolloutState, RolloutView)? {
        refresh()
        return cached.withLockedValue { cached in
            guard let state = cached.decoded.rollouts[id], let view = cached.views[id] else { return nil }
            return (state, view)
        }
    }

    /// Every rollout's status; `outcomes` adds each device's attempt (see ``RolloutStatus/outcomes``).
    public func statuses(outcomes: Bool = false) -> [RolloutStatus] {
        refresh()
        return cached.withLockedValue { cached in
            cached.views.keys.sorted().compactMap { id in
                guard let state = cached.decoded.rollouts[id], let view = cached.views[id] else { return nil }
                return RolloutStatus(view: view, state: state, trust: trust, outcomes: outcomes, names: trust.names)
            }
        }
    }

    public func status(_ id: String, outcomes: Bool = false) -> RolloutStatus? {
        state(id).map { RolloutStatus(view: $0.1, state: $0.0, trust: trust, outcomes: outcomes, names: trust.names) }
    }

    /// The collected envelope (all signatures) of one command, for approval.
    public func envelope(_ id: String, sequence: Int64) -> SignedCommand? {
        guard let (state, view) = state(id), let copies = state.commands[sequence] else { return nil }
        let chosen =
            sequence == 1
            ? (view.planHash.flatMap { copies[$0] } ?? copies.values.min { $0.bodyHash < $1.bodyHash }) : copies.values.min { $0.bodyHash < $1.bodyHash }
        return chosen?.command
    }

    func write(_ key: String, _ value: [UInt8]) {
        let changed = cached.withLockedValue { cached -> Bool in
            guard cached.written[key] != value else { return false }
            cached.written[key] = value
            return true
        }
        guard changed else { return }
        do {
            try store.putRecord(key, value)
            cached.withLockedValue { $0.generation += 1 }
        } catch {
            cached.withLockedValue { _ = $0.written.removeValue(forKey: key) }
            logger.error("rollout record not written", metadata: ["record.key": "\(key)", "error": "\(error)"])
        }
    }

    // MARK: Preview

    /// What `plan` would select (`--dry-run`): this gateway's devices, and those other gateways
    /// gossip (`site`, the `dv/` summaries: a device counts at the gateway that saw it last), with
    /// a warning when this gateway could not start any device for want of the target.
    public func preview(_ plan: RolloutPlan, site: [SiteDevice] = []) -> RolloutPreview {
        let records = registry.all()
        var reported = records.map { DeviceFacts($0, gateway: gateway) }
        let mine = Set(records.map(\.id))
        for device in site where device.gateway != gateway && !mine.contains(device.id) {
            let tags = (device.tags ?? "").split(separator: ",").map(String.init)
            reported.append(
                DeviceFacts(
                    id: device.id, hardware: device.hardware, variant: device.variant, tags: Set(tags), gateway: device.gateway,
                    version: device.version))
        }
        let facts = reported.map(inferred)
        let guessed = Set(zip(reported, facts).compactMap { $0.hardware == nil && $1.hardware != nil ? $0.id : nil })
        var preview = RolloutPreview(plan: plan, devices: facts, inferredHardware: guessed)
        if !available(plan.target) {
            preview.warnings.append(
                "\(gateway) does not hold \(plan.target.path) (sha256 \(plan.target.sha256.prefix(16))…) yet: it starts no device until it does")
        }
        return preview
    }

    // MARK: Admin commands

    public enum SubmitError: Error, CustomStringConvertible {
        case malformed(String)
        case refused(String)

        public var description: String {
            switch self {
            case .malformed(let why), .refused(let why): why
            }
        }
    }

    /// Accepts a signed command from the admin API: a new plan, a control, or an extra signature.
    /// It must carry at least one valid signature of a site admin (so nobody floods the mesh
    /// with unsigned commands); the threshold is what decides whether it takes effect.
    public func submit(_ bytes: [UInt8], rollout expected: String?) throws(SubmitError) -> String {
        let command: SignedCommand
        do { command = try SignedCommand(bytes: bytes, file: "command") } catch { throw .malformed(error.description) }
        let id: String
        if command.sequence == 1 {
            guard command.kind == RolloutPlan.commandKind else { throw .malformed("sequence 1 must be a rollout.plan, got \(command.kind)") }
            do { id = try RolloutPlan(json: command.payload).id } catch { throw .malformed(error.description) }
        } else {
            do { id = try RolloutControl(command: command).rollout } catch { throw .malformed(error.description) }
        }
        if let expected, expected != id { throw .malformed("command is for rollout \(id), not \(expected)") }
        do throws(TrustError) {
            try command.verify(trust: trust, lastSequence: nil)
        } catch {
            // Below threshold is fine (approval collects signatures); none valid is not.
            guard case let .unsignedCommand(_, _, valid, _) = error, valid >= 1 else { throw .refused(error.description) }
        }
        var copy = CommandCopy(command)
        if let held = state(id)?.0.commands[command.sequence]?[copy.bodyHash] { copy.merge(held) }
        for (key, value) in RolloutRecords.command(copy, rollout: id) { write(key, value) }
        refresh(force: true)
        logger.notice(
            "rollout command accepted",
            metadata: [
                "rollout.id": "\(id)", "command.kind": "\(command.kind)", "command.sequence": "\(command.sequence)",
                "command.signatures": "\(copy.signatures.count)",
            ])
        return id
    }

    /// Halts a rollout from this gateway (admin API; no signature needed: the safe direction).
    public func halt(_ id: String, reason: String) -> Bool {
        guard let (_, view) = state(id), view.plan != nil else { return false }
        let mark = HaltMark(epoch: view.controlEpoch, at: now(), gateway: gateway, reason: "halted by an admin: \(reason)")
        let (key, value) = RolloutRecords.halt(mark, rollout: id)
        write(key, value)
        refresh(force: true)
        return true
    }

    // MARK: Upkeep (once a second)

    /// Writes census, stage advances, halts and timeouts; re-publishes command unions that add
    /// signatures nobody else has published.
    public func upkeep(devices: [DeviceFacts]) {
        refresh(force: true)
        let now = now()
        let members = store.aliveMembers()
        let snapshot = cached.withLockedValue { ($0.decoded, $0.views) }
        let mine = devices.filter { $0.gateway == gateway && admitted($0.id) }.map(inferred)
        let newest = RolloutGovernance.newestFirst(Array(snapshot.1.values))
        let governing = Dictionary(mine.map { ($0.id, RolloutGovernance.governing($0, newestFirst: newest)) }, uniquingKeysWith: { a, _ in a })
        for (id, state) in snapshot.0.rollouts.sorted(by: { $0.key < $1.key }) {
            guard let view = snapshot.1[id] else { continue }
            republishCommands(id: id, state: state, decoded: snapshot.0)
            guard let plan = view.plan else { continue }
            // The rollout's devices here: those it governs that belong to its (fixed) device set,
            // and any it already started, whatever has happened since.
            let counted = mine.filter { device in
                (governing[device.id] == id && view.inDeviceSet(device)) || state.outcomes[device.id]?.gateway == gateway
            }
            if let census = RolloutUpkeep.census(RolloutView.census(of: counted, plan: plan), own: state.census[gateway], view: view, now: now) {
                let (censusKey, censusValue) = RolloutRecords.census(census, at: now, rollout: id)
                write(censusKey, censusValue)
            }
            for (device, outcome) in state.outcomes where outcome.gateway == gateway {
                if let failed = view.timedOut(outcome, now: now) { record(failed, device: device, rollout: id) }
            }
            // Devices that already run the target count as succeeded from their last report.
            for device in counted where state.outcomes[device.id] == nil && governing[device.id] == id {
                if case .alreadyCurrent(let done) = view.decide(device, version: device.version, outcome: nil, inFlightHere: 0, now: now, gateway: gateway) {
                    record(done, device: device.id, rollout: id)
                }
            }
            startPushes(id: id, view: view, state: state)
            let marks = RolloutUpkeep.marks(view: view, now: now, gateway: gateway, members: members.count, alive: members, completes: !state.outcomes.isEmpty)
            if let mark = marks.stage {
                let (key, value) = RolloutRecords.stage(mark, rollout: id)
                write(key, value)
                logger.notice(
                    "rollout stage",
                    metadata: [
                        "rollout.id": "\(id)", "rollout.stage": "\(mark.stage + 1)/\(plan.stages.count)",
                        "rollout.percent": "\(plan.stages[mark.stage])",
                    ])
            }
            if let mark = marks.halt {
                let (key, value) = RolloutRecords.halt(mark, rollout: id)
                write(key, value)
                logger.warning("rollout halted: failure threshold crossed", metadata: ["rollout.id": "\(id)", "rollout.reason": "\(mark.reason)"])
            }
            if let mark = marks.completion {
                let (key, value) = RolloutRecords.completion(mark, rollout: id)
                write(key, value)
                logger.notice(
                    "rollout completed", metadata: ["rollout.id": "\(id)", "rollout.succeeded": "\(mark.succeeded)", "rollout.failed": "\(mark.failed)"])
            }
            if let halt = view.halt {
                let first = cached.withLockedValue { cached -> Bool in
                    defer { cached.haltsSeen[id] = halt }
                    return cached.haltsSeen[id] != halt
                }
                if first {
                    logger.warning(
                        "rollout halt known",
                        metadata: [
                            "rollout.id": "\(id)", "rollout.halt.by": "\(halt.gateway)", "rollout.halt.at": "\(halt.at)",
                            "rollout.reason": "\(halt.reason)",
                        ])
                }
            }
        }
        announce(now: now)
    }

    /// Announces what changed since the last upkeep (nothing on the first: that is the baseline).
    func announce(now: Int64) {
        refresh()  // only if this upkeep wrote something: it began with a full refresh
        let views = cached.withLockedValue { $0.views }
        let found = cached.withLockedValue { cached -> [RolloutEvent] in
            defer { cached.milestones = views.mapValues(RolloutEvent.Milestones.init) }
            guard let before = cached.milestones else { return [] }
            return views.keys.sorted().flatMap { id in RolloutEvent.changes(from: before[id], to: views[id]!, gateway: gateway, now: now) }
        }
        guard !found.isEmpty else { return }
        for event in found {
            logger.notice(
                "rollout event", metadata: ["rollout.id": "\(event.rollout)", "rollout.event": "\(event.kind.rawValue)", "rollout.detail": "\(event.detail)"])
        }
        events(found)
    }

    func republishCommands(id: String, state: RolloutState, decoded: RolloutRecords.Decoded) {
        let byOwner = decoded.copiesByOwner[id] ?? [:]
        for (sequence, copies) in state.commands {
            for (hash, union) in copies {
                let published = byOwner.values.contains { $0[sequence].map { $0.bodyHash == hash && $0.signatures == union.signatures } ?? false }
                let mine = byOwner[gateway]?[sequence]
                // Publish when no one has published the union yet, and this gateway's own copy
                // (if any) is of this body: one copy per (gateway, sequence) in the records.
                guard !published, mine == nil || mine!.bodyHash == hash else { continue }
                for (key, value) in RolloutRecords.command(union, rollout: id) { write(key, value) }
            }
        }
    }

    func record(_ outcome: DeviceOutcome, device: String, rollout: String) {
        let (key, value) = RolloutRecords.outcome(outcome, device: device, rollout: rollout)
        write(key, value)
        if outcome.gateway == gateway {
            registry.noteOutcome(device, answer: "rollout \(rollout): \(outcome.phase)" + (outcome.detail.isEmpty ? "" : ": \(outcome.detail)"))
        }
        if outcome.phase.isFinished {
            logger.info(
                "rollout device \(outcome.phase)", metadata: ["rollout.id": "\(rollout)", "device.id": "\(device)", "rollout.detail": "\(outcome.detail)"])
        }
        // A failure may cross the threshold: halt at once, before the next device could start.
        if outcome.phase == .failed, let view = state(rollout)?.1, let mark = view.haltDue(now: now(), gateway: gateway) {
            let (haltKey, haltValue) = RolloutRecords.halt(mark, rollout: rollout)
            write(haltKey, haltValue)
            logger.warning("rollout halted: failure threshold crossed", metadata: ["rollout.id": "\(rollout)", "rollout.reason": "\(mark.reason)"])
        }
    }

    // MARK: Devices

    func facts(_ query: DeviceQuery) -> DeviceFacts {
        let known = registry.device(query.id)
        return inferred(
            DeviceFacts(
                id: query.id, hardware: query.hardware ?? known?.hardware, variant: known?.variant,
                tags: Set(known?.tagList ?? []), gateway: gateway, version: query.version ?? known?.version,
                firstSeen: known.map { Int64($0.firstSeen * 1000) }))
    }

    /// Whether rollouts may update the device: always with open admission, else only when an
    /// admin added, assigned or accepted it.
    func admitted(_ id: String) -> Bool {
        admission == .open || (registry.device(id)?.admitted ?? false)
    }

    /// The facts with hardware inferred from the running image when the device reports none.
    func inferred(_ facts: DeviceFacts) -> DeviceFacts {
        guard facts.hardware == nil, facts.version != nil, let catalog = catalog() else { return facts }
        return facts.inferringHardware(from: catalog.targets.values.map { ($0.version, $0.hardware) })
    }

    /// Whether this gateway trusts `target` (same path and SHA-256 in its verified metadata) and
    /// holds its image.
    func available(_ target: RolloutTarget) -> Bool {
        guard let catalog = catalog() else { return true }
        guard let served = catalog.targets[target.path], served.sha256 == target.sha256, catalog.blob(forTarget: target.path) != nil else { return false }
        return true
    }

    public func answer(_ query: DeviceQuery) -> RolloutAnswer {
        starting.withLock { answerLocked(query) }
    }

    func answerLocked(_ query: DeviceQuery) -> RolloutAnswer {
        refresh()
        let now = now()
        let (decoded, views) = cached.withLockedValue { ($0.decoded, $0.views) }
        let newest = RolloutGovernance.newestFirst(Array(views.values))
        // An attempt in flight finishes under the rollout that started it, whichever governs now.
        for view in newest {
            guard let plan = view.plan, let outcome = decoded.rollouts[view.id]?.outcomes[query.id], !outcome.phase.isFinished else { continue }
            if outcome.gateway == gateway, let next = view.confirm(outcome, version: query.version, error: nil, now: now) {
                record(next, device: query.id, rollout: view.id)
                return .hold(next.phase == .succeeded ? "rollout \(view.id): runs \(plan.target.path)" : "rollout \(view.id): failed: \(next.detail)")
            }
            return .offer(path: plan.target.path, rollout: view.id)
        }
        // Otherwise the newest approved open rollout that covers the device decides alone.
        let facts = facts(query)
        guard admitted(query.id) else {
            return newest.contains(where: { $0.covers(facts) })
                ? .hold("pending admission (devices.admission: known): an admin runs `otamesh device accept \(query.id)`") : .none
        }
        guard let view = newest.first(where: { $0.covers(facts) }), let plan = view.plan, let state = decoded.rollouts[view.id] else { return .none }
        let id = view.id
        let inFlight = state.outcomes.values.reduce(0) { $0 + ($1.gateway == gateway && !$1.phase.isFinished ? 1 : 0) }
        switch view.decide(
            facts, version: query.version, outcome: state.outcomes[query.id], inFlightHere: inFlight, now: now, gateway: gateway,
            available: available(plan.target))
        {
        case .notSelected:
            return .none  // not (yet) in its stage or device set: manual assignments apply
        case .start(let started):
            record(started, device: query.id, rollout: id)
            logger.info("rollout device started", metadata: ["rollout.id": "\(id)", "device.id": "\(query.id)", "rollout.stage": "\(view.stage + 1)"])
            return .offer(path: plan.target.path, rollout: id)
        case .inFlight:
            return .offer(path: plan.target.path, rollout: id)
        case .alreadyCurrent(let done):
            record(done, device: query.id, rollout: id)
            return .hold("rollout \(id): already runs \(plan.target.path)")
        case .succeeded:
            return .hold("rollout \(id): runs \(plan.target.path)")
        case .failedBefore(let why):
            return .hold("rollout \(id): \(why) (not offered again until retry-failed)")
        case .wait(let why):
            return .hold("rollout \(id): \(why)")
        }
    }

    public func concluded(_ query: DeviceQuery, rollout: String, upToDate: Bool) {
        guard let (state, view) = state(rollout), let outcome = state.outcomes[query.id], outcome.gateway == gateway, !outcome.phase.isFinished else { return }
        let now = now()
        if upToDate {
            var done = outcome
            done.phase = .succeeded
            done.updated = max(now, outcome.updated)
            done.detail = query.version ?? "runs \(view.plan?.target.path ?? "the target")"
            record(done, device: query.id, rollout: rollout)
        } else if outcome.phase == .installing {
            // The whole image went out, and the device asks again without running it: it
            // rebooted into the old firmware.
            var failed = outcome
            failed.phase = .failed
            failed.updated = max(now, outcome.updated)
            failed.detail = "rebooted into \(query.version ?? "its old firmware"), not \(view.plan?.target.version ?? view.plan?.target.path ?? "the target")"
            record(failed, device: query.id, rollout: rollout)
        }
    }

    public func transfer(sha256: String, device known: String?, address: String, completed: Bool) {
        refresh()
        let (decoded, views) = cached.withLockedValue { ($0.decoded, $0.views) }
        for (id, state) in decoded.rollouts {
            guard let plan = views[id]?.plan, plan.target.sha256 == sha256 else { continue }
            let mine = state.outcomes.filter { $0.value.gateway == gateway && !$0.value.phase.isFinished }
            // The device the route named; else the one in-flight device at that address (several
            // devices behind one address cannot be told apart by it, so none is moved).
            let devices =
                known.map { [$0] }
                ?? {
                    let here = mine.keys.filter { registry.device($0)?.address == address }
                    return here.count == 1 ? here : []
                }()
            for device in devices {
                guard let outcome = mine[device] else { continue }
                let phase: DeviceOutcome.Phase = completed ? .installing : .downloading
                guard outcome.phase < phase else { continue }
                var next = outcome
                next.phase = phase
                next.updated = max(now(), outcome.updated)
                record(next, device: device, rollout: id)
            }
        }
    }
}
