import OTAMeshTrust

/// How rollout state rides on the mesh's replicated records (owner-keyed, highest version
/// wins, values ≤ 1200 bytes). Every gateway writes only its own records; ``decode(_:)``
/// merges all owners' records into one ``RolloutState`` per rollout by the state's join, so the
/// result is the same whatever order the records arrived in.
///
/// | key | value |
/// |---|---|
/// | `ro/ID/c/SEQ/PART` | a command envelope (compact canonical JSON) in parts: `HASH16 PART/COUNT\n` + bytes |
/// | `ro/ID/d/DEVICE` | `EPOCH PHASE BUCKET STARTED UPDATED DETAIL` |
/// | `ro/ID/n` | the census: matching devices per stage, `3,12,40,80` |
/// | `ro/ID/h` | the halt flag: `EPOCH AT REASON` |
/// | `ro/ID/s` | the stage register: `STAGE SINCE` |
/// | `ro/ID/f` | the completion mark: `AT SUCCEEDED FAILED` |
public enum RolloutRecords {
    public static let prefix = "ro/"
    /// Bytes of envelope per part (the part header and key stay well inside 1200 B).
    public static let partSize = 1_000
    public static let maxParts = 16
    /// The most matching devices one gateway's census may claim per stage. Timestamps in records
    /// are Unix milliseconds and never negative. Both bounds keep the view's sums and `now − t`
    /// from overflowing on whatever a peer writes.
    public static let maxCensusCount = 10_000_000

    public struct Entry: Sendable, Equatable {
        public var key: String
        public var owner: String
        public var value: [UInt8]
        public init(key: String, owner: String, value: [UInt8]) {
            self.key = key
            self.owner = owner
            self.value = value
        }
    }

    // MARK: Encoding (what a gateway writes)

    public static func command(_ copy: CommandCopy, rollout: String) -> [(key: String, value: [UInt8])] {
        let bytes = (copy.command?.compactBytes) ?? []
        let hash = String(RolloutHash.hex(bytes).prefix(16))
        let count = max(1, (bytes.count + partSize - 1) / partSize)
        return (0..<count).map { part in
            let chunk = bytes[(part * partSize)..<min(bytes.count, (part + 1) * partSize)]
            return ("\(prefix)\(rollout)/c/\(copy.sequence)/\(part)", Array("\(hash) \(part)/\(count)\n".utf8) + chunk)
        }
    }

    public static func outcome(_ outcome: DeviceOutcome, device: String, rollout: String) -> (key: String, value: [UInt8]) {
        let detail = DeviceOutcome.recordable(outcome.detail)
        return (
            "\(prefix)\(rollout)/d/\(device)",
            Array("\(outcome.epoch) \(outcome.phase) \(outcome.bucket) \(outcome.started) \(outcome.updated) \(detail)".utf8)
        )
    }

    /// `COUNTS AT`: the counts per stage, comma-separated, and when they were written (ms).
    public static func census(_ perStage: [Int], at: Int64, rollout: String) -> (key: String, value: [UInt8]) {
        ("\(prefix)\(rollout)/n", Array("\(perStage.map(String.init).joined(separator: ",")) \(at)".utf8))
    }

    public static func halt(_ mark: HaltMark, rollout: String) -> (key: String, value: [UInt8]) {
        ("\(prefix)\(rollout)/h", Array("\(mark.epoch) \(mark.at) \(String(mark.reason.prefix(300)))".utf8))
    }

    public static func stage(_ mark: StageMark, rollout: String) -> (key: String, value: [UInt8]) {
        ("\(prefix)\(rollout)/s", Array("\(mark.stage) \(mark.since)".utf8))
    }

    public static func completion(_ mark: CompletionMark, rollout: String) -> (key: String, value: [UInt8]) {
        ("\(prefix)\(rollout)/f", Array("\(mark.at) \(mark.succeeded) \(mark.failed)".utf8))
    }

    // MARK: Decoding (what a gateway reads)

    public struct Decoded: Sendable {
        public var rollouts: [String: RolloutState] = [:]
        /// Command copies per rollout as each owner wrote them (owner → sequence → copy), to
        /// decide whether this gateway's union adds anything.
        public var copiesByOwner: [String: [String: [Int64: CommandCopy]]] = [:]
        /// Records that did not decode, with why: counted and reported, never fatal.
        public var problems: [RolloutError] = []
        public init() {}
    }

    /// Merges every `ro/` record (any owner, any order) into rollout states. `versions` gives
    /// each (owner, key)'s record version, used as the census version.
    public static func decode(_ entries: [Entry], versions: [String: UInt64] = [:]) -> Decoded {
        var decoded = Decoded()
        var parts: [String: [Int: (hash: Substring, count: Int, bytes: ArraySlice<UInt8>)]] = [:]  // "owner ID SEQ" → parts
        for entry in entries where entry.key.hasPrefix(prefix) {
            let fields = entry.key.dropFirst(prefix.count).split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count >= 2, RolloutPlan.isValidID(String(fields[0])) else {
                decoded.problems.append(.invalidRecord(key: entry.key, reason: "not ro/ID/…"))
                continue
            }
            let id = String(fields[0])
            var state = decoded.rollouts[id] ?? RolloutState(id: id)
            let text = String(decoding: entry.value, as: UTF8.self)
            let words = text.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: false)
            switch fields[1] {
            case "c":
                let rest = fields.count > 2 ? fields[2].split(separator: "/") : []
                guard rest.count == 2, let sequence = Int64(rest[0]), let part = Int(rest[1]), part < maxParts,
                    let newline = entry.value.firstIndex(of: 10)
                else {
                    decoded.problems.append(.invalidRecord(key: entry.key, reason: "not ro/ID/c/SEQ/PART"))
                    continue
                }
                let header = String(decoding: entry.value[..<newline], as: UTF8.self).split(separator: " ")
                let counts = header.count == 2 ? header[1].split(separator: "/") : []
                guard counts.count == 2, let count = Int(counts[1]), count <= maxParts else {
                    decoded.problems.append(.invalidRecord(key: entry.key, reason: "bad part header"))
                    continue
                }
                parts["\(entry.owner) \(id) \(sequence)", default: [:]][part] = (header[0], count, entry.value[(newline + 1)...])
            case "d":
                let device = fields.count > 2 ? String(fields[2]) : ""
                guard !device.isEmpty, words.count >= 5, let epoch = Int64(words[0]), let phase = DeviceOutcome.Phase(name: String(words[1])),
                    let bucket = Int(words[2]), (0..<StageSelection.buckets).contains(bucket), let started = Int64(words[3]), started >= 0,
                    let updated = Int64(words[4]), updated >= 0
                else {
                    decoded.problems.append(.invalidRecord(key: entry.key, reason: "not 'EPOCH PHASE BUCKET STARTED UPDATED DETAIL'"))
                    continue
                }
                state.record(
                    DeviceOutcome(
                        epoch: epoch, phase: phase, bucket: bucket, gateway: entry.owner, started: started,
                        updated: updated, detail: words.count > 5 ? String(words[5]) : ""), device: device)
            case "n":
                // `COUNTS AT`; a census without its time (older gateways) counts as written at 0.
                let countsText = words.first ?? ""
                let fieldsText = countsText.split(separator: ",", omittingEmptySubsequences: false)
                let counts = fieldsText.compactMap { Int($0) }
                let at = words.count == 2 ? Int64(words[1]) : 0
                guard !counts.isEmpty, counts.count == fieldsText.count, counts.allSatisfy({ (0...maxCensusCount).contains($0) }),
                    words.count <= 2, let at, at >= 0
                else {
                    decoded.problems.append(.invalidRecord(key: entry.key, reason: "census is not 'COUNTS AT' (comma-separated counts, milliseconds)"))
                    continue
                }
                state.setCensus(Census(version: versions["\(entry.owner) \(entry.key)"] ?? 1, perStage: counts, at: at), gateway: entry.owner)
            case "h":
                guard words.count >= 2, let epoch = Int64(words[0]), let at = Int64(words[1]), at >= 0 else {
                    decoded.problems.append(.invalidRecord(key: entry.key, reason: "not 'EPOCH AT REASON'"))
                    continue
                }
                let reason = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false).dropFirst(2).first.map(String.init) ?? ""
                state.setHalt(HaltMark(epoch: epoch, at: at, gateway: entry.owner, reason: reason))
            case "s":
                guard words.count == 2, let stage = Int(words[0]), stage >= 0, stage < 20, let since = Int64(words[1]), since >= 0 else {
                    decoded.problems.append(.invalidRecord(key: entry.key, reason: "not 'STAGE SINCE'"))
                    continue
                }
                state.setStage(StageMark(stage: stage, since: since, gateway: entry.owner))
            case "f":
                guard words.count == 3, let at = Int64(words[0]), at >= 0, let succeeded = Int(words[1]), succeeded >= 0,
                    let failed = Int(words[2]), failed >= 0
                else {
                    decoded.problems.append(.invalidRecord(key: entry.key, reason: "not 'AT SUCCEEDED FAILED'"))
                    continue
                }
                state.setCompletion(CompletionMark(at: at, gateway: entry.owner, succeeded: succeeded, failed: failed))
            default:
                decoded.problems.append(.invalidRecord(key: entry.key, reason: "unknown kind '\(fields[1])'"))
                continue
            }
            decoded.rollouts[id] = state
        }
        // Reassemble command envelopes whose parts all carry the same hash.
        for (slot, pieces) in parts.sorted(by: { $0.key < $1.key }) {
            let words = slot.split(separator: " ")
            let (owner, id) = (String(words[0]), String(words[1]))
            guard let first = pieces[0], pieces.count == first.count,
                (0..<first.count).allSatisfy({ pieces[$0]?.hash == first.hash && pieces[$0]?.count == first.count })
            else { continue }  // still arriving
            let bytes = (0..<first.count).flatMap { Array(pieces[$0]!.bytes) }
            guard String(RolloutHash.hex(bytes).prefix(16)) == first.hash else {
                decoded.problems.append(.invalidRecord(key: "\(prefix)\(id)/c/\(words[2])", reason: "parts from \(owner) do not hash to \(first.hash)"))
                continue
            }
            do {
                let copy = CommandCopy(try SignedCommand(bytes: bytes, file: "\(prefix)\(id)/c/\(words[2])"))
                guard copy.sequence == Int64(words[2]) else {
                    throw TrustError.malformed(file: "command", reason: "sequence \(copy.sequence) under key \(words[2])")
                }
                var state = decoded.rollouts[id] ?? RolloutState(id: id)
                state.add(copy)
                decoded.rollouts[id] = state
                decoded.copiesByOwner[id, default: [:]][owner, default: [:]][copy.sequence] = copy
            } catch {
                decoded.problems.append(.invalidRecord(key: "\(prefix)\(id)/c/\(words[2])", reason: "\(error)"))
            }
        }
        return decoded
    }
}
