import OTAMeshCommon
import OTAMeshTrust

/// One gateway's rollouts as a pure state machine (the shape of swift-cluster-membership's
/// `SWIM.Instance`): it holds the merged rollout records, takes events — records arriving, a
/// device request, a transfer, a push's progress and end, an admin command, the upkeep tick —
/// and answers with ``RolloutDirective``s (write this record, push this device, log this,
/// announce this). Its own writes are in its state at once; the shell (`RolloutEngine`) makes
/// them durable, runs the pushes and reports back. No clock, no I/O: `now` comes with each event.
public struct RolloutNode: Sendable {
    public let gateway: String
    public let trust: SiteTrust
    /// Simultaneous pushes of this gateway, all rollouts together, and per segment.
    public let pushLimits: PushQueue.Limits

    /// The records as last loaded, with this gateway's writes since merged in.
    public private(set) var decoded = RolloutRecords.Decoded()
    var views: [String: RolloutView] = [:]
    var cache = VerificationCache()
    /// Halts already logged, by rollout.
    var haltsSeen: [String: HaltMark] = [:]
    /// Pushes started and not yet ended, by "rollout device": the device's segment.
    public internal(set) var pushing: [String: String] = [:]
    /// Those of them whose image has crossed (the device reported `installing`): they wait for
    /// the reboot and use no bandwidth, so the push limits no longer count them.
    var transferred: Set<String> = []
    /// Each rollout's milestones at the last upkeep (nil until the first: what was already there
    /// at start is not announced again).
    var milestones: [String: RolloutEvent.Milestones]?
    /// The push devices, targets ready here and whether pushes may start, as of the last upkeep
    /// (a push slot that frees between two upkeeps is refilled from them).
    var pushDevices: [PushQueue.Candidate] = []
    var ready: Set<RolloutTarget> = []
    var acceptingPushes = true
    /// Gateways seen alive at the last upkeep, and the devices of this tick's rollout that run
    /// its target already with no outcome yet (set for each rollout in turn).
    var alive: Set<String> = []
    var current: [DeviceFacts] = []
    /// This gateway's devices as of the last upkeep (for ``superseded(_:)``).
    var devices: [DeviceFacts] = []
    /// What the event being handled asks the shell to do.
    var directives: [RolloutDirective] = []

    public init(gateway: String, trust: SiteTrust, pushLimits: PushQueue.Limits = .unlimited) {
        self.gateway = gateway
        self.trust = trust
        self.pushLimits = pushLimits
    }

    // MARK: Records and views

    /// Records arrived: `decoded` is everything the mesh holds now (this gateway's writes
    /// included once they landed). Views are rebuilt as they are asked for.
    public mutating func load(_ decoded: RolloutRecords.Decoded) {
        self.decoded = decoded
        views = [:]
    }

    public func state(_ id: String) -> RolloutState? { decoded.rollouts[id] }

    /// This gateway's devices (as of the last upkeep) that open rollout `id` selects but a newer
    /// rollout governs, and those rollouts; nil when there are none (or `id` is not open).
    public mutating func superseded(_ id: String) -> RolloutStatus.Superseded? {
        guard let view = view(id), view.isOpen else { return nil }
        let newest = RolloutGovernance.newestFirst(Array(allViews().values))
        var count = 0
        var by: Set<String> = []
        for device in devices where view.covers(device) {
            guard let governing = RolloutGovernance.governing(device, newestFirst: newest), governing != id else { continue }
            count += 1
            by.insert(governing)
        }
        return count == 0 ? nil : RolloutStatus.Superseded(devices: count, by: by.sorted())
    }

    public mutating func view(_ id: String) -> RolloutView? {
        if let view = views[id] { return view }
        guard let state = decoded.rollouts[id] else { return nil }
        let view = RolloutView(state: state, trust: trust, cache: &cache)
        views[id] = view
        return view
    }

    /// Every rollout's view, by id.
    public mutating func allViews() -> [String: RolloutView] {
        for id in decoded.rollouts.keys where views[id] == nil { _ = view(id) }
        return views
    }

    /// The directives gathered while handling one event.
    mutating func take() -> [RolloutDirective] {
        defer { directives = [] }
        return directives
    }

    mutating func log(_ level: RolloutLog.Level, _ message: String, _ metadata: [String: String]) {
        directives.append(.log(RolloutLog(level, message, metadata)))
    }

    /// Takes one of this gateway's writes into the state, and asks the shell to store it.
    mutating func write(_ record: RolloutRecord, rollout: String) {
        var state = decoded.rollouts[rollout] ?? RolloutState(id: rollout)
        switch record {
        case .command(let copy):
            state.add(copy)
            decoded.copiesByOwner[rollout, default: [:]][gateway, default: [:]][copy.sequence] = copy
        case let .outcome(device, outcome): state.record(outcome, device: device)
        case let .census(perStage, at):
            state.setCensus(Census(version: (state.census[gateway]?.version ?? 0) + 1, perStage: perStage, at: at), gateway: gateway)
        case .halt(let mark): state.setHalt(mark)
        case .stage(let mark): state.setStage(mark)
        case .completion(let mark): state.setCompletion(mark)
        }
        decoded.rollouts[rollout] = state
        views[rollout] = nil
        directives.append(.write(rollout: rollout, record))
    }

    /// Records a device's outcome; a failure may cross the threshold, so the halt is written at
    /// once, before the next device could start.
    mutating func record(_ outcome: DeviceOutcome, device: String, rollout: String, now: Int64) {
        write(.outcome(device: device, outcome), rollout: rollout)
        if outcome.gateway == gateway {
            directives.append(.note(device: device, answer: "rollout \(rollout): \(outcome.phase)" + (outcome.detail.isEmpty ? "" : ": \(outcome.detail)")))
        }
        if outcome.phase.isFinished {
            log(.info, "rollout device \(outcome.phase)", ["rollout.id": rollout, "device.id": device, "rollout.detail": outcome.detail])
        }
        if outcome.phase == .failed, let mark = view(rollout)?.haltDue(now: now, gateway: gateway) {
            write(.halt(mark), rollout: rollout)
            log(.warning, "rollout halted: failure threshold crossed", ["rollout.id": rollout, "rollout.reason": mark.reason])
        }
    }

    /// Moves an in-flight attempt of this gateway forward to `phase` (never back, never to an end).
    mutating func advance(rollout: String, device: String, to phase: DeviceOutcome.Phase, now: Int64) {
        guard let outcome = decoded.rollouts[rollout]?.outcomes[device], outcome.gateway == gateway, !outcome.phase.isFinished,
            outcome.phase < phase, !phase.isFinished
        else { return }
        var next = outcome
        next.phase = phase
        next.updated = max(now, outcome.updated)
        record(next, device: device, rollout: rollout, now: now)
    }

    // MARK: Admin commands

    /// A command accepted by the admin API (its signatures already checked by the shell): this
    /// gateway publishes its copy, unioned with any it holds.
    public mutating func submit(_ command: SignedCommand, rollout: String) -> [RolloutDirective] {
        var copy = CommandCopy(command)
        if let held = decoded.rollouts[rollout]?.commands[command.sequence]?[copy.bodyHash] { copy.merge(held) }
        write(.command(copy), rollout: rollout)
        log(
            .notice, "rollout command accepted",
            [
                "rollout.id": rollout, "command.kind": command.kind, "command.sequence": "\(command.sequence)",
                "command.signatures": "\(copy.signatures.count)",
            ])
        return take()
    }

    /// An admin halts a rollout here (no signature needed: the safe direction). Nil: no approved
    /// plan is known.
    public mutating func halt(_ id: String, reason: String, now: Int64) -> [RolloutDirective]? {
        guard let view = view(id), view.plan != nil else { return nil }
        write(.halt(HaltMark(epoch: view.controlEpoch, at: now, gateway: gateway, reason: "halted by an admin: \(reason)")), rollout: id)
        return take()
    }

    // MARK: Device requests

    /// A device asks: `facts` as this gateway knows them (hardware inferred), `version` what it
    /// reports now, `admitted` whether rollouts may update it, `isReady` whether this gateway
    /// trusts and holds a target.
    public struct Request: Sendable {
        public var facts: DeviceFacts
        public var version: String?
        public var admitted: Bool
        /// The device's filesystem holds its current configuration (counts for configuration plans).
        public var configured: Bool
        /// The device asks for its filesystem (a new configuration), not its firmware: only
        /// configuration plans answer, and they never start an attempt before the firmware.
        public var filesystem: Bool
        public init(facts: DeviceFacts, version: String?, admitted: Bool, configured: Bool = false, filesystem: Bool = false) {
            self.facts = facts
            self.version = version
            self.admitted = admitted
            self.configured = configured
            self.filesystem = filesystem
        }
    }

    public mutating func request(_ request: Request, now: Int64, isReady: (RolloutTarget) -> Bool) -> (RolloutAnswer, [RolloutDirective]) {
        let answer = answer(request, now: now, isReady: isReady)
        return (answer, take())
    }

    mutating func answer(_ request: Request, now: Int64, isReady: (RolloutTarget) -> Bool) -> RolloutAnswer {
        if request.filesystem { return filesystemAnswer(request, now: now, isReady: isReady) }
        let id = request.facts.id
        let newest = RolloutGovernance.newestFirst(Array(allViews().values))
        // An attempt in flight finishes under the rollout that started it, whichever governs now.
        for view in newest {
            guard let plan = view.plan, let outcome = decoded.rollouts[view.id]?.outcomes[id], !outcome.phase.isFinished else { continue }
            if outcome.gateway == gateway, let next = view.confirm(outcome, version: request.version, error: nil, now: now, configured: request.configured) {
                record(next, device: id, rollout: view.id, now: now)
                return .hold(next.phase == .succeeded ? "rollout \(view.id): runs \(plan.target.path)" : "rollout \(view.id): failed: \(next.detail)")
            }
            if outcome.phase == .offered, view.mode == .halted || view.mode == .aborted {
                let why = view.mode == .aborted ? "rollout \(view.id) was aborted" : "rollout \(view.id) halted: \(view.halt?.reason ?? "")"
                return .cancel(path: plan.target.path, rollout: view.id, why: why)
            }
            return .offer(path: plan.target.path, rollout: view.id)
        }
        // Otherwise the newest approved open rollout that covers the device decides alone.
        guard request.admitted else {
            return newest.contains(where: { $0.covers(request.facts) })
                ? .hold("pending admission (devices.admission: known): an admin runs `otamesh device accept \(id)`") : .none
        }
        guard let view = newest.first(where: { $0.covers(request.facts) }), let plan = view.plan, let state = decoded.rollouts[view.id] else {
            return .none
        }
        let rollout = view.id
        let inFlight = state.outcomes.values.reduce(0) { $0 + ($1.gateway == gateway && !$1.phase.isFinished ? 1 : 0) }
        switch view.decide(
            request.facts, version: request.version, outcome: state.outcomes[id], inFlightHere: inFlight, now: now, gateway: gateway,
            available: isReady(plan.target), configured: request.configured)
        {
        case .notSelected:
            return .none  // not (yet) in its stage or device set: manual assignments apply
        case .start(let started):
            record(started, device: id, rollout: rollout, now: now)
            log(.info, "rollout device started", ["rollout.id": rollout, "device.id": id, "rollout.stage": "\(view.stage + 1)"])
            return .offer(path: plan.target.path, rollout: rollout)
        case .inFlight:
            return .offer(path: plan.target.path, rollout: rollout)
        case .alreadyCurrent(let done):
            record(done, device: id, rollout: rollout, now: now)
            return .hold("rollout \(rollout): already runs \(plan.target.path)")
        case .succeeded:
            return .hold("rollout \(rollout): runs \(plan.target.path)")
        case .failedBefore(let why):
            return .hold("rollout \(rollout): \(why) (not offered again until retry-failed)")
        case .wait(let why):
            if let window = plan.window, !window.contains(milliseconds: now), view.mode == .running, isReady(plan.target) {
                // Only the window stops it (running, the image here): download ahead.
                return .prefetch(path: plan.target.path, rollout: rollout, why: "rollout \(rollout): \(why)")
            }
            return .hold("rollout \(rollout): \(why)")
        }
    }

    /// The device routes served (`upToDate: false`) or found current (`true`) the target offered
    /// to `device` under `rollout`; `version` is what the device reported.
    public mutating func concluded(
        device: String, version: String?, rollout: String, upToDate: Bool, now: Int64, configured: Bool = false
    ) -> [RolloutDirective] {
        guard let view = view(rollout), let outcome = decoded.rollouts[rollout]?.outcomes[device], outcome.gateway == gateway,
            !outcome.phase.isFinished
        else { return [] }
        if upToDate, view.plan?.configuration == true {
            // The firmware is current; the attempt ends when the configuration is too.
            if let next = view.confirm(outcome, version: version ?? view.plan?.target.version, error: nil, now: now, configured: configured) {
                record(next, device: device, rollout: rollout, now: now)
            }
        } else if upToDate {
            var done = outcome
            done.phase = .succeeded
            done.updated = max(now, outcome.updated)
            done.detail = version ?? "runs \(view.plan?.target.path ?? "the target")"
            record(done, device: device, rollout: rollout, now: now)
        } else if outcome.phase == .installing {
            // The whole image went out, and the device asks again without running it: it
            // rebooted into the old firmware.
            var failed = outcome
            failed.phase = .failed
            failed.updated = max(now, outcome.updated)
            failed.detail = "rebooted into \(version ?? "its old firmware"), not \(view.plan?.target.version ?? view.plan?.target.path ?? "the target")"
            record(failed, device: device, rollout: rollout, now: now)
        }
        return take()
    }

    /// A device's filesystem reported its current configuration (httpUpdate filesystem mode):
    /// its in-flight attempts under configuration plans succeed when it runs the target
    /// (`version`, as it last reported it).
    public mutating func configured(device: String, version: String?, now: Int64) -> [RolloutDirective] {
        for (id, state) in decoded.rollouts.sorted(by: { $0.key < $1.key }) {
            guard let view = view(id), view.plan?.configuration == true, let outcome = state.outcomes[device], outcome.gateway == gateway,
                let next = view.confirm(outcome, version: version, error: nil, now: now, configured: true)
            else { continue }
            record(next, device: device, rollout: id, now: now)
        }
        return take()
    }

    /// A blob body started (`completed: false`) or finished going out whole: to `device` when the
    /// route knows it, else to the one in-flight device among `atAddress` (the devices registered
    /// at the request's address; several behind one address cannot be told apart, so none moves).
    public mutating func transfer(sha256: String, device known: String?, atAddress: Set<String>, completed: Bool, now: Int64) -> [RolloutDirective] {
        for (id, state) in decoded.rollouts.sorted(by: { $0.key < $1.key }) {
            guard let plan = view(id)?.plan, plan.target.sha256 == sha256 else { continue }
            let mine = state.outcomes.filter { $0.value.gateway == gateway && !$0.value.phase.isFinished }
            let devices =
                known.map { [$0] }
                ?? {
                    let here = mine.keys.filter { atAddress.contains($0) }
                    return here.count == 1 ? here : []
                }()
            for device in devices {
                guard let outcome = mine[device] else { continue }
                let phase: DeviceOutcome.Phase = completed ? .installing : .downloading
                guard outcome.phase < phase else { continue }
                var next = outcome
                next.phase = phase
                next.updated = max(now, outcome.updated)
                record(next, device: device, rollout: id, now: now)
            }
        }
        return take()
    }
}
