import Crypto
import OTAMeshCommon
import OTAMeshTrust

/// One device's progress in one rollout, written by the gateway that drives the device.
///
/// Merged by a fixed precedence — the lexicographic maximum of (epoch, phase, updated,
/// gateway, started, detail) — so whichever order copies arrive in, every gateway keeps the same
/// one, and a device seen by two gateways counts once (GOSSIP-AND-STYLE.md §1.5.2).
public struct DeviceOutcome: Sendable, Hashable, Comparable {
    /// Ordered: a later phase wins within an epoch. `succeeded` outranks `failed`: a device that
    /// reports the new version runs it, whatever a gateway timed out on earlier.
    public enum Phase: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
        /// Offered (pull) or queued for its push adapter.
        case offered = 1
        /// The image is being transferred.
        case downloading = 2
        /// The whole image reached the device; waiting for it to reboot and report.
        case installing = 3
        case failed = 4
        case succeeded = 5

        public static func < (a: Phase, b: Phase) -> Bool { a.rawValue < b.rawValue }
        public var isFinished: Bool { self == .failed || self == .succeeded }
        public var description: String {
            switch self {
            case .offered: "offered"
            case .downloading: "downloading"
            case .installing: "installing"
            case .failed: "failed"
            case .succeeded: "succeeded"
            }
        }
        public init?(name: String) {
            guard let phase = Phase.allCases.first(where: { $0.description == name }) else { return nil }
            self = phase
        }
    }

    /// The retry epoch the attempt belongs to (1, or the sequence of the `retry-failed` that
    /// allowed it).
    public var epoch: Int64
    public var phase: Phase
    /// The device's stage bucket (kept so counting needs no hashing).
    public var bucket: Int
    public var gateway: String
    /// Milliseconds (Unix) when the attempt started, and when this phase was reached.
    public var started: Int64
    public var updated: Int64
    /// The version reported, or why it failed: one line of at most ``maxDetail`` characters, as
    /// its record carries it (devices report what they like), so the writer holds what its peers
    /// decode and replicas stay equal.
    public var detail: String {
        didSet { if detail.count > Self.maxDetail || detail.contains(where: \.isNewline) { detail = Self.recordable(detail) } }
    }

    public static let maxDetail = 160

    static func recordable(_ detail: String) -> String { String(detail.map { $0.isNewline ? " " : $0 }.prefix(maxDetail)) }

    public init(epoch: Int64, phase: Phase, bucket: Int, gateway: String, started: Int64, updated: Int64, detail: String = "") {
        self.epoch = epoch
        self.phase = phase
        self.bucket = bucket
        self.gateway = gateway
        self.started = started
        self.updated = updated
        self.detail = Self.recordable(detail)
    }

    public static func < (a: DeviceOutcome, b: DeviceOutcome) -> Bool {
        if (a.epoch, a.phase.rawValue, a.updated) != (b.epoch, b.phase.rawValue, b.updated) {
            return (a.epoch, a.phase.rawValue, a.updated) < (b.epoch, b.phase.rawValue, b.updated)
        }
        return (a.gateway, a.started, a.bucket, a.detail) < (b.gateway, b.started, b.bucket, b.detail)
    }
}

/// How many matching devices a gateway drives, per stage (cumulative, like the stages):
/// the denominators of the success and failure rules. Written by its gateway with an increasing
/// version; the highest version wins.
public struct Census: Sendable, Hashable {
    public var version: UInt64
    /// Matching devices with `bucket < stages[k] × 100`, for each stage k.
    public var perStage: [Int]
    /// When its gateway wrote it (milliseconds, the writer's clock; 0 from a record without a
    /// time): a census written before the pending decision's evidence point does not count
    /// (``RolloutView/evidenceSince``).
    public var at: Int64

    public init(version: UInt64, perStage: [Int], at: Int64 = 0) {
        self.version = version
        self.perStage = perStage
        self.at = at
    }
}

/// The halt flag: set by any gateway that sees failures pass the threshold. Sticky for its
/// control epoch: only a signed resume or retry with a higher sequence lifts it.
public struct HaltMark: Sendable, Hashable, Comparable {
    /// The highest resume/retry sequence (or 1, the plan) the halting gateway knew.
    public var epoch: Int64
    /// Milliseconds (Unix) when the threshold was seen crossed.
    public var at: Int64
    public var gateway: String
    public var reason: String

    public init(epoch: Int64, at: Int64, gateway: String, reason: String) {
        self.epoch = epoch
        self.at = at
        self.gateway = gateway
        self.reason = reason
    }

    /// Higher epoch wins; within an epoch the earliest halt (then gateway, reason) wins.
    public static func < (a: HaltMark, b: HaltMark) -> Bool {
        if a.epoch != b.epoch { return a.epoch < b.epoch }
        if a.at != b.at { return a.at > b.at }
        if a.gateway != b.gateway { return a.gateway > b.gateway }
        return a.reason > b.reason
    }
}

/// The stage register: the highest stage any gateway advanced to, and since when.
public struct StageMark: Sendable, Hashable, Comparable {
    public var stage: Int
    /// Milliseconds (Unix) when the stage began.
    public var since: Int64
    public var gateway: String

    public init(stage: Int, since: Int64, gateway: String) {
        self.stage = stage
        self.since = since
        self.gateway = gateway
    }

    /// Higher stage wins; within a stage the earliest start (then gateway) wins.
    public static func < (a: StageMark, b: StageMark) -> Bool {
        if a.stage != b.stage { return a.stage < b.stage }
        if a.since != b.since { return a.since > b.since }
        return a.gateway > b.gateway
    }
}

/// The completion mark: a rollout whose last stage finished (every targeted device succeeded
/// or failed) is over for good. Written by the first gateway that sees it with fresh evidence
/// (the stage rule's majority); later devices, halts or failures no longer change it.
public struct CompletionMark: Sendable, Hashable, Comparable, Codable {
    /// Milliseconds (Unix) when the rollout was seen complete.
    public var at: Int64
    public var gateway: String
    /// Devices succeeded and failed (this epoch) when it completed.
    public var succeeded: Int
    public var failed: Int

    public init(at: Int64, gateway: String, succeeded: Int, failed: Int) {
        (self.at, self.gateway, self.succeeded, self.failed) = (at, gateway, succeeded, failed)
    }

    /// The earliest mark wins (then gateway, counts), so every replica keeps the same one.
    public static func < (a: CompletionMark, b: CompletionMark) -> Bool {
        if a.at != b.at { return a.at > b.at }
        if a.gateway != b.gateway { return a.gateway > b.gateway }
        return (a.succeeded, a.failed) > (b.succeeded, b.failed)
    }
}

/// One signed command's body with every signature seen for it. Copies of the same body merge by
/// union of signatures (m-of-n approval collects them); at most ``maxSignatures`` are kept,
/// the smallest by (key id, signature), so the merge stays a join.
public struct CommandCopy: Sendable, Hashable {
    public static let maxSignatures = 16

    public let signed: JSONValue
    public private(set) var signatures: Set<SignatureEntry>

    public struct SignatureEntry: Sendable, Hashable, Comparable {
        public var keyID: String
        public var signature: [UInt8]
        public init(keyID: String, signature: [UInt8]) {
            self.keyID = keyID
            self.signature = signature
        }
        public static func < (a: Self, b: Self) -> Bool {
            a.keyID != b.keyID ? a.keyID < b.keyID : a.signature.lexicographicallyPrecedes(b.signature)
        }
    }

    public init(_ command: SignedCommand) {
        signed = command.signed
        signatures = Set(command.signatures.map { SignatureEntry(keyID: $0.keyID, signature: $0.signature) })
        trim()
    }

    public init(signed: JSONValue, signatures: Set<SignatureEntry>) {
        self.signed = signed
        self.signatures = signatures
        trim()
    }

    mutating func trim() {
        guard signatures.count > Self.maxSignatures else { return }
        signatures = Set(signatures.sorted().prefix(Self.maxSignatures))
    }

    public mutating func merge(_ other: CommandCopy) {
        signatures.formUnion(other.signatures)
        trim()
    }

    public var command: SignedCommand? {
        try? SignedCommand(signed: signed, signatures: signatures.sorted().map { MetadataSignature(keyID: $0.keyID, signature: $0.signature) })
    }

    public var sequence: Int64 { signed["sequence"]?.integerValue ?? 0 }
    public var kind: String { signed["kind"]?.stringValue ?? "" }
    /// The hex SHA-256 of the canonical signed body: what approvers sign, and the copy's identity.
    public var bodyHash: String { RolloutHash.hex(signed.canonicalBytes) }
}

/// Everything one gateway knows about one rollout: a join-semilattice. ``merge(_:)`` is
/// commutative, associative and idempotent, so replicas converge whatever the order, duplication
/// or delay of what they exchange.
public struct RolloutState: Sendable, Hashable {
    public let id: String
    /// sequence → body hash → copy. Sequence 1 is the plan; higher ones are controls.
    public private(set) var commands: [Int64: [String: CommandCopy]] = [:]
    public private(set) var outcomes: [String: DeviceOutcome] = [:]
    public private(set) var census: [String: Census] = [:]
    public private(set) var halt: HaltMark?
    public private(set) var stage: StageMark?
    public private(set) var completion: CompletionMark?

    public init(id: String) {
        self.id = id
    }

    public mutating func merge(_ other: RolloutState) {
        precondition(other.id == id, "merging rollout \(other.id) into \(id)")
        for (_, copies) in other.commands {
            for (_, copy) in copies { add(copy) }
        }
        for (device, outcome) in other.outcomes { record(outcome, device: device) }
        for (gateway, entry) in other.census { setCensus(entry, gateway: gateway) }
        if let mark = other.halt { setHalt(mark) }
        if let mark = other.stage { setStage(mark) }
        if let mark = other.completion { setCompletion(mark) }
    }

    /// Adds (or unions into) a command copy.
    public mutating func add(_ copy: CommandCopy) {
        let hash = copy.bodyHash
        if var held = commands[copy.sequence]?[hash] {
            held.merge(copy)
            commands[copy.sequence]![hash] = held
        } else {
            commands[copy.sequence, default: [:]][hash] = copy
        }
    }

    /// Merges a device outcome; true when it changed what this replica holds.
    @discardableResult
    public mutating func record(_ outcome: DeviceOutcome, device: String) -> Bool {
        if let held = outcomes[device], held >= outcome { return false }
        outcomes[device] = outcome
        return true
    }

    public mutating func setCensus(_ entry: Census, gateway: String) {
        if let held = census[gateway] {
            // One writer numbers its census; equal versions with different counts cannot come
            // from it, but are still merged deterministically.
            if held.version > entry.version { return }
            if held.version == entry.version,
                !(held.perStage.lexicographicallyPrecedes(entry.perStage) || (held.perStage == entry.perStage && held.at < entry.at))
            {
                return
            }
        }
        census[gateway] = entry
    }

    public mutating func setHalt(_ mark: HaltMark) {
        if let held = halt, held >= mark { return }
        halt = mark
    }

    public mutating func setStage(_ mark: StageMark) {
        if let held = stage, held >= mark { return }
        stage = mark
    }

    public mutating func setCompletion(_ mark: CompletionMark) {
        if let held = completion, held >= mark { return }
        completion = mark
    }
}

/// SHA-256 as lower-case hex.
public enum RolloutHash {
    public static func hex(_ bytes: [UInt8]) -> String {
        hexString(SHA256.hash(data: bytes))
    }
}
