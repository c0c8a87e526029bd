import OTAMeshTrust

/// One rollout as the admin API (`GET /api/v1/rollouts/{id}`) and `otamesh rollout status
/// --json` show it: the plan, approvals, mode, stage, and progress per stage and per gateway.
public struct RolloutStatus: Codable, Sendable, Equatable {
    public struct Target: Codable, Sendable, Equatable {
        public var path: String
        public var sha256: String
        public var length: Int64
        public var version: String?
        public var hardware: String?
    }

    public struct Plan: Codable, Sendable, Equatable {
        public var target: Target
        /// The device selector, `hardware=esp32,tag=floor2` (empty: every device).
        public var select: String
        public var stages: [Int]
        public var soak: Int64
        public var success: Int
        public var maxFailurePercent: Int?
        public var maxFailures: Int?
        public var minFinished: Int
        public var concurrency: Int
        public var deviceTimeout: Int64
        public var window: String?
        /// Devices first seen after a stage began still join it (else the set is fixed per stage).
        public var dynamic: Bool?
        /// An app version rolled out with each device's configuration (``RolloutPlan/configuration``).
        public var configuration: Bool? = nil
    }

    /// A site admin key that signed a command, with the name the site trust file gives it.
    public struct Signer: Codable, Sendable, Equatable {
        public var keyID: String
        public var name: String?

        public init(keyID: String, name: String?) {
            self.keyID = keyID
            self.name = name
        }

        /// `alice (1f2e3d4c)`, or the short key id alone.
        public var label: String { name.map { "\($0) (\(keyID.prefix(8)))" } ?? String(keyID.prefix(16)) }
    }

    /// The completion mark: the rollout is over, with these counts.
    public typealias Completion = CompletionMark

    public struct Halt: Codable, Sendable, Equatable {
        public var epoch: Int64
        /// Milliseconds since the Unix epoch.
        public var at: Int64
        public var gateway: String
        public var reason: String

        public init(epoch: Int64, at: Int64, gateway: String, reason: String) {
            (self.epoch, self.at, self.gateway, self.reason) = (epoch, at, gateway, reason)
        }
    }

    /// One device's attempt (only with `?outcomes=1`): read-only, for the lab's check that no
    /// update started after its gateway knew a halt.
    public struct Outcome: Codable, Sendable, Equatable {
        public var device: String
        public var gateway: String
        public var epoch: Int64
        public var phase: String
        /// Milliseconds since the Unix epoch: the attempt's start, and its latest phase change.
        public var started: Int64
        public var updated: Int64
        public var detail: String

        public init(device: String, gateway: String, epoch: Int64, phase: String, started: Int64, updated: Int64, detail: String) {
            (self.device, self.gateway, self.epoch, self.phase) = (device, gateway, epoch, phase)
            (self.started, self.updated, self.detail) = (started, updated, detail)
        }
    }

    public struct Control: Codable, Sendable, Equatable {
        public var sequence: Int64
        public var kind: String
        public var stage: Int?
        /// Seconds since the Unix epoch.
        public var issued: Int64
        /// The site admins whose signatures it carries.
        public var signers: [Signer]?
    }

    public var id: String
    /// `awaiting approval`, `running`, `paused`, `halted`, `aborted`, `completed`.
    public var mode: String
    public var plan: Plan?
    /// Distinct trusted admin keys that signed the plan, and how many the site requires.
    public var approvals: Int
    public var threshold: Int
    public var planProblem: String?
    /// Seconds since the Unix epoch when the plan was issued (its author's clock), and who
    /// signed it: the first signer is the author as far as the records tell.
    public var planIssued: Int64?
    public var planSigners: [Signer]?
    /// The admin who wrote the plan (its `author`, when that key signed it), else nil.
    public var planAuthor: Signer?
    /// Admin names by key id, from the site trust file (to show who signed pending commands).
    public var adminNames: [String: String]?
    /// The plan as proposed while it is not valid yet (awaiting approval): what approving signs.
    public var proposed: Plan?
    /// Set once the rollout is over (terminal): `completed`, or `completed with N failed`.
    public var completion: Completion?
    /// The current stage, 0-based.
    public var stage: Int
    /// Milliseconds since the Unix epoch when the current stage began.
    public var stageSince: Int64?
    public var stages: [RolloutView.StageProgress]
    public var gateways: [String: RolloutView.GatewayProgress]
    public var halt: Halt?
    public var controls: [Control]
    public var pending: [RolloutView.Pending]
    /// The highest command sequence seen: the next control takes one more.
    public var lastSequence: Int64
    public var finished: Int
    public var failed: Int
    /// Every device's outcome, sorted by start; nil unless asked for (`?outcomes=1`).
    public var outcomes: [Outcome]?
    /// Devices of the answering gateway that this open rollout selects but a newer one governs
    /// (``RolloutGovernance``): it starts none of them, which is why it may stay running. Nil: none.
    public var superseded: Superseded?

    public struct Superseded: Codable, Sendable, Equatable {
        public var devices: Int
        /// The newer rollouts that govern them.
        public var by: [String]
        public init(devices: Int, by: [String]) {
            self.devices = devices
            self.by = by
        }
    }

    /// `names`: admin names by key id (from the site trust file), for the audit trail.
    public init(view: RolloutView, state: RolloutState, trust: SiteTrust, outcomes withOutcomes: Bool = false, names: [String: String] = [:]) {
        func signers(_ copies: [CommandCopy]) -> [Signer] {
            Set(copies.flatMap { $0.signatures.map(\.keyID) }).filter { trust.admins[$0] != nil }.sorted()
                .map { Signer(keyID: $0, name: names[$0]) }
        }
        id = view.id
        mode = view.mode.rawValue
        func shown(_ plan: RolloutPlan) -> Plan {
            Plan(
                target: Target(
                    path: plan.target.path, sha256: plan.target.sha256, length: plan.target.length,
                    version: plan.target.version, hardware: plan.target.hardware),
                select: plan.selector.text, stages: plan.stages, soak: plan.soakSeconds, success: plan.successPercent,
                maxFailurePercent: plan.maxFailurePercent, maxFailures: plan.maxFailures, minFinished: plan.minFinished,
                concurrency: plan.concurrency, deviceTimeout: plan.deviceTimeoutSeconds, window: plan.window?.description,
                dynamic: plan.dynamic ? true : nil, configuration: plan.configuration ? true : nil)
        }
        plan = view.plan.map(shown)
        // Approvals: trusted admin keys among the signatures of the plan copy in use (or of the
        // best-signed copy while it awaits approval). Counted by key id; validity is what the
        // mode reflects.
        let copies = state.commands[1].map { Array($0.values) } ?? []
        let inUse = view.planHash.flatMap { hash in copies.first { $0.bodyHash == hash } }
        let best =
            inUse
            ?? copies.max { a, b in
                Set(a.signatures.map(\.keyID)).intersection(trust.admins.keys).count < Set(b.signatures.map(\.keyID)).intersection(trust.admins.keys).count
            }
        approvals = best.map { Set($0.signatures.map(\.keyID)).intersection(trust.admins.keys).count } ?? 0
        let planSigners = best.map { signers([$0]) }
        self.planSigners = planSigners
        // What the admins are asked to approve: the plan body as proposed, before it is valid.
        let body = view.plan ?? best.flatMap { try? RolloutPlan(json: $0.signed["payload"] ?? .null) }
        adminNames = names.isEmpty ? nil : names
        planAuthor = body?.author.flatMap { author in planSigners?.first { $0.keyID == author } }
        proposed = view.plan == nil ? body.map(shown) : nil
        planIssued = best.flatMap { $0.signed["issued"]?.stringValue.flatMap(ISOTime.parse) }
        completion = view.completion
        threshold = trust.threshold
        planProblem = view.planProblem
        stage = view.stage
        stageSince = view.stageSince
        stages = view.stages
        gateways = view.gateways
        halt = view.halt.map { Halt(epoch: $0.epoch, at: $0.at, gateway: $0.gateway, reason: $0.reason) }
        controls = view.controls.map { control in
            let copies = (state.commands[control.sequence] ?? [:]).values.filter { $0.kind == control.kind.commandKind }
            return Control(sequence: control.sequence, kind: control.kind.rawValue, stage: control.stage, issued: control.issued, signers: signers(copies))
        }
        pending = view.pending
        lastSequence = view.lastSequence
        finished = view.finished
        failed = view.failed
        outcomes =
            withOutcomes
            ? state.outcomes.map { device, outcome in
                Outcome(
                    device: device, gateway: outcome.gateway, epoch: outcome.epoch, phase: outcome.phase.description,
                    started: outcome.started, updated: outcome.updated, detail: outcome.detail)
            }.sorted { ($0.started, $0.device) < ($1.started, $1.device) }
            : nil
    }
}

/// `GET /api/v1/site`: what a client needs to sign commands for this gateway's site.
public struct SiteInfo: Codable, Sendable, Equatable {
    public var site: String
    public var threshold: Int
    /// Key ids of the site's admin keys.
    public var admins: [String]
    /// This gateway's mesh name.
    public var gateway: String

    public init(site: String, threshold: Int, admins: [String], gateway: String) {
        (self.site, self.threshold, self.admins, self.gateway) = (site, threshold, admins, gateway)
    }
}

/// One trusted target as `GET /api/v1/targets` lists it.
public struct TargetInfo: Codable, Sendable, Equatable {
    public var path: String
    public var sha256: String
    public var length: Int64
    public var version: String?
    public var hardware: String?
    /// The bytes are in this gateway's cache.
    public var cached: Bool
    /// The app the target is a version of (its signed `custom.app` name), if any.
    public var app: String?

    public init(path: String, sha256: String, length: Int64, version: String?, hardware: String?, cached: Bool, app: String? = nil) {
        (self.path, self.sha256, self.length) = (path, sha256, length)
        (self.version, self.hardware, self.cached) = (version, hardware, cached)
        self.app = app
    }
}
