import Logging
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import OTAMeshTrust

/// Carries out rollouts on this gateway (ARCHITECTURE.md, flow steps 3–5): the shell around the
/// pure ``RolloutNode``. It hands the node each event (the mesh's records, a device request, a
/// transfer, a push's progress and end, an admin command, the upkeep tick) and carries out the
/// directives it returns: records into the mesh, pushes into the ``PushRunner``, notes into the
/// device registry, log lines and webhook events. Every decision is the node's.
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
    /// Devices' configuration images (nil: none built here): configuration plans push them to
    /// ArduinoOTA devices after their firmware.
    let configurations: DeviceConfigurations?

    /// The pure rollout state machine, and what this gateway last wrote (unchanged values are
    /// not rewritten). One lock: an event's decision and its writes land together, so
    /// simultaneous requests cannot both take the last concurrency slot (the mesh's lock is only
    /// ever taken inside it, never around it).
    struct Shell {
        var node: RolloutNode
        var written: [String: [UInt8]] = [:]
    }
    let shell: NIOLockedValueBox<Shell>
    /// Where this gateway's pushes run; ``runPushes()`` (``RolloutService``) drives it.
    let pushes = PushRunner()

    public init(
        gateway: String, trust: SiteTrust, store: any RolloutRecordStore, registry: DeviceRegistry,
        clock: WallClock, logger: Logger, adapters: [any PushAdapter] = [],
        image: @escaping @Sendable (RolloutTarget) -> PushImage? = { _ in nil }, secrets: DeviceSecretStore? = nil,
        pushLimits: PushQueue.Limits = .unlimited, catalog: @escaping @Sendable () -> ServingCatalog? = { nil },
        events: @escaping @Sendable ([RolloutEvent]) -> Void = { _ in }, admission: DeviceAdmission = .open,
        configurations: DeviceConfigurations? = nil
    ) {
        self.configurations = configurations
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
        shell = NIOLockedValueBox(Shell(node: RolloutNode(gateway: gateway, trust: trust, pushLimits: pushLimits)))
    }

    // MARK: Events

    /// Hands one event to the node and carries out its directives, under the shell's lock.
    func handle<Result>(_ event: (inout RolloutNode) -> (Result, [RolloutDirective])) -> Result {
        shell.withLockedValue { shell in
            let (result, directives) = event(&shell.node)
            perform(directives, in: &shell)
            return result
        }
    }

    func handle(_ event: (inout RolloutNode) -> [RolloutDirective]) {
        handle { node in ((), event(&node)) }
    }

    func perform(_ directives: [RolloutDirective], in shell: inout Shell) {
        for directive in directives {
            switch directive {
            case let .write(rollout, record):
                for (key, value) in record.encoded(rollout: rollout) where shell.written[key] != value {
                    do {
                        try store.putRecord(key, value)
                        shell.written[key] = value
                    } catch {
                        // The node holds it until the next load; the next change writes again.
                        logger.error("rollout record not written", metadata: ["record.key": "\(key)", "error": "\(error)"])
                    }
                }
            case let .push(rollout, device, outcome):
                let more = startPush(rollout: rollout, device: device, outcome: outcome, node: &shell.node)
                perform(more, in: &shell)
            case let .note(device, answer):
                registry.noteOutcome(device, answer: answer)
            case .log(let line):
                let metadata = line.metadata.mapValues { Logger.MetadataValue.string($0) }
                switch line.level {
                case .info: logger.info("\(line.message)", metadata: metadata)
                case .notice: logger.notice("\(line.message)", metadata: metadata)
                case .warning: logger.warning("\(line.message)", metadata: metadata)
                }
            case .announce(let found):
                events(found)
            }
        }
    }

    /// Re-reads the mesh's records into the node (at each upkeep, and before admin commands).
    func load(_ shell: inout Shell) {
        let (entries, versions) = store.rolloutEntries()
        shell.node.load(RolloutRecords.decode(entries, versions: versions))
    }

    // MARK: State

    public func state(_ id: String) -> (RolloutState, RolloutView)? {
        shell.withLockedValue { shell in
            guard let state = shell.node.state(id), let view = shell.node.view(id) else { return nil }
            return (state, view)
        }
    }

    /// Every rollout's status; `outcomes` adds each device's attempt (see ``RolloutStatus/outcomes``).
    public func statuses(outcomes: Bool = false) -> [RolloutStatus] {
        shell.withLockedValue { shell in
            let views = shell.node.allViews()
            return views.keys.sorted().compactMap { id in
                guard let state = shell.node.state(id), let view = views[id] else { return nil }
                var status = RolloutStatus(view: view, state: state, trust: trust, outcomes: outcomes, names: trust.names)
                status.superseded = shell.node.superseded(id)
                return status
            }
        }
    }

    public func status(_ id: String, outcomes: Bool = false) -> RolloutStatus? {
        guard let (state, view) = state(id) else { return nil }
        var status = RolloutStatus(view: view, state: state, trust: trust, outcomes: outcomes, names: trust.names)
        status.superseded = shell.withLockedValue { $0.node.superseded(id) }
        return status
    }

    /// The collected envelope (all signatures) of one command, for approval.
    public func envelope(_ id: String, sequence: Int64) -> SignedCommand? {
        guard let (state, view) = state(id), let copies = state.commands[sequence] else { return nil }
        let chosen =
            sequence == 1
            ? (view.planHash.flatMap { copies[$0] } ?? copies.values.min { $0.bodyHash < $1.bodyHash }) : copies.values.min { $0.bodyHash < $1.bodyHash }
        return chosen?.command
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
        handle { node in node.submit(command, rollout: id) }
        return id
    }

    /// Halts a rollout from this gateway (admin API; no signature needed: the safe direction).
    public func halt(_ id: String, reason: String) -> Bool {
        let now = now()
        return handle { node in
            guard let directives = node.halt(id, reason: reason, now: now) else { return (false, []) }
            return (true, directives)
        }
    }

    // MARK: Upkeep (once a second)

    /// Loads the mesh's records and hands the node the tick: census, timeouts, pushes, marks.
    public func upkeep(devices: [DeviceFacts]) {
        let now = now()
        let alive = store.aliveMembers()
        let mine = devices.filter { $0.gateway == gateway && admitted($0.id) }.map(inferred)
        let pushDevices =
            adapters.isEmpty ? [] : registry.all().filter { adapters[$0.family] != nil && !$0.unconfirmable && (admission == .open || $0.admitted) }
        let candidates = pushDevices.map {
            PushQueue.Candidate(
                facts: facts(DeviceQuery(id: $0.id, family: $0.family, hardware: $0.hardware, version: $0.version)), version: $0.version,
                segment: $0.effectiveSegment, configurable: configurations != nil && Self.pushesFilesystem($0.family),
                configured: configurations?.isCurrent($0.id) ?? false)
        }
        let tick = RolloutNode.Tick(now: now, devices: mine, pushDevices: candidates, alive: alive, acceptingPushes: pushes.accepting)
        shell.withLockedValue { shell in
            load(&shell)
            perform(shell.node.upkeep(tick, isReady: available), in: &shell)
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
        let request = RolloutNode.Request(
            facts: facts(query), version: query.version, admitted: admitted(query.id), configured: query.configured, filesystem: query.filesystem)
        let now = now()
        return handle { node in node.request(request, now: now, isReady: available) }
    }

    public func concluded(_ query: DeviceQuery, rollout: String, upToDate: Bool) {
        let now = now()
        handle { node in
            node.concluded(device: query.id, version: query.version, rollout: rollout, upToDate: upToDate, now: now, configured: query.configured)
        }
    }

    public func reported(device: String, rollout: String, _ report: RolloutNode.DeviceReport) {
        let now = now()
        handle { node in node.reported(device: device, rollout: rollout, report, now: now) }
    }

    public func configurationReported(_ query: DeviceQuery) {
        let now = now()
        handle { node in node.configured(device: query.id, version: query.version, now: now) }
    }

    public func transfer(sha256: String, device known: String?, address: String, completed: Bool) {
        let here = known == nil ? Set(registry.all().filter { $0.address == address }.map(\.id)) : []
        let now = now()
        handle { node in node.transfer(sha256: sha256, device: known, atAddress: here, completed: completed, now: now) }
    }
}
