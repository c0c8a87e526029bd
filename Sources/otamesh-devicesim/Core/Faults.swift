import OTAMeshCommon

/// Fault injection for one device: which link faults hit which image offsets, and whether the
/// flash write corrupts a byte. Offsets count image bytes (the body bytes of a download, summed
/// over the Range requests of one), so the same option means the same thing in every family.
/// Pure state machine; the transport applies what it says.
struct FaultPlan: Sendable, Equatable {
    /// Close the connection after this many image bytes (nil with `drops > 0`: a random offset
    /// per attempt, from the device's seeded generator).
    var dropAtByte: Int?
    /// How many downloads to cut (default 1 when `dropAtByte` is given).
    var drops = 0
    /// Stop reading for `stallSeconds` after this many image bytes (once per device).
    var stallAtByte: Int?
    var stallSeconds = 0.0
    /// Read at most this many body bytes per second (a slow link; TCP back-pressure reaches
    /// the gateway because the device stops draining its socket).
    var rate: Int?
    /// Flip one byte as it is written to flash (once per device): the firmware's own image
    /// check must catch it.
    var corruptFlash = false
    /// Lose power after this many image bytes (once per device): RAM is lost, flash keeps what
    /// was written, the device reboots.
    var powerLossAtByte: Int?

    var isEmpty: Bool {
        drops == 0 && stallAtByte == nil && rate == nil && !corruptFlash && powerLossAtByte == nil
    }
}

struct FaultState: Sendable {
    enum Kind: String, Sendable { case powerLoss = "power-loss", drop, stall }

    let plan: FaultPlan
    private var rng: SplitMix64
    private(set) var dropsLeft: Int
    private(set) var stallDone = false
    private(set) var powerLossDone = false
    private(set) var corruptDone = false
    /// The drop offset of the current download attempt.
    private(set) var dropOffset: Int?
    /// Faults that fired since the last ``takeFired()``: (kind, image offset).
    private var log: [(String, Int)] = []

    init(plan: FaultPlan, seed: UInt64, device: Int) {
        self.plan = plan
        rng = SplitMix64(seed: seed, stream: UInt64(device), mixer: 0x9E37_79B9_7F4A_7C15)
        dropsLeft = plan.drops
    }

    /// A new download of an image of `imageLength` bytes starts: pick this attempt's drop offset.
    mutating func beginAttempt(imageLength: Int) {
        dropOffset = nil
        guard dropsLeft > 0, imageLength > 1 else { return }
        dropOffset = plan.dropAtByte ?? Int.random(in: 1..<imageLength, using: &rng)
    }

    /// The first fault due in image bytes `[from, to)`, or exactly at `to` when the range ends
    /// there (a fault "after N bytes" fires once N bytes have been delivered).
    func next(from: Int, to: Int) -> (offset: Int, kind: Kind)? {
        var best: (Int, Kind)?
        func consider(_ offset: Int?, _ kind: Kind) {
            guard let offset, offset >= from, offset <= to else { return }
            if best == nil || offset < best!.0 { best = (offset, kind) }
        }
        // Same offset: power loss wins over a drop, a drop over a stall (the order of `consider`).
        if !powerLossDone { consider(plan.powerLossAtByte, .powerLoss) }
        if dropsLeft > 0 { consider(dropOffset, .drop) }
        if !stallDone { consider(plan.stallAtByte, .stall) }
        return best
    }

    mutating func fired(_ kind: Kind, at offset: Int) {
        log.append((kind.rawValue, offset))
        switch kind {
        case .powerLoss: powerLossDone = true
        case .drop:
            dropsLeft -= 1
            dropOffset = nil
        case .stall: stallDone = true
        }
    }

    /// The image offset to corrupt while flashing an image of `imageLength` bytes (once).
    mutating func corruptionOffset(imageLength: Int) -> Int? {
        guard plan.corruptFlash, !corruptDone, imageLength > 0 else { return nil }
        corruptDone = true
        log.append(("corrupt-flash", imageLength / 2))
        return imageLength / 2
    }

    /// The faults that fired since the last call.
    mutating func takeFired() -> [(kind: String, offset: Int)] {
        defer { log.removeAll() }
        return log.map { ($0.0, $0.1) }
    }
}
