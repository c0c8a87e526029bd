/// Reads a response body the way a device drains its socket, applying the link faults of its
/// ``FaultState`` at image offsets: cut the connection, stall, lose power, or read slowly.
struct BodyReader {
    /// Image offset of the first body byte of this response.
    var imageOffset: Int
    /// Bytes of this response's body delivered so far.
    private(set) var delivered = 0
    /// Read at most this many bytes per second (nil: as fast as they come).
    var rate: Int?
    private var rateStart: ContinuousClock.Instant?
    private var rateDelivered = 0

    init(imageOffset: Int, rate: Int?) {
        self.imageOffset = imageOffset
        self.rate = rate
    }

    /// Delivers up to `length` body bytes (nil: until the peer closes) to `sink`, in order.
    /// Throws ``TransferError`` for a short body, a timeout, or an injected drop / power loss
    /// (after delivering the bytes before it, so the device has "written" them).
    mutating func read(
        _ io: inout ConnectionIO, length: Int?, faults: inout FaultState, phase: String = "body",
        sink: (ArraySlice<UInt8>) throws -> Void
    ) async throws {
        while length.map({ delivered < $0 }) ?? true {
            let position = imageOffset + delivered
            let remaining = length.map { $0 - delivered } ?? Int.max
            // Stop at the next fault boundary inside this response.
            var want = remaining
            if let fault = faults.next(from: position, to: position + min(remaining, Int.max / 2)) {
                if fault.offset == position {
                    try await apply(fault.kind, at: position, io: &io, faults: &faults)
                    continue
                }
                want = min(want, fault.offset - position)
            }
            // Small slices keep each pause short (a device reading slowly is not idle).
            if let rate { want = min(want, max(1, rate / 20)) }
            guard let chunk = try await io.read(max: want, phase: phase) else {
                if length == nil { return }
                throw TransferError.closedEarly(received: delivered, expected: length)
            }
            try sink(chunk)
            delivered += chunk.count
            try await pace(chunk.count, watchdog: io.watchdog)
        }
        // A fault exactly at the end of this response still fires (e.g. a stall between requests).
        if let fault = faults.next(from: imageOffset + delivered, to: imageOffset + delivered),
            fault.kind != .drop || length == nil
        {
            try await apply(fault.kind, at: imageOffset + delivered, io: &io, faults: &faults)
        }
    }

    private func apply(_ kind: FaultState.Kind, at position: Int, io: inout ConnectionIO, faults: inout FaultState) async throws {
        faults.fired(kind, at: position)
        switch kind {
        case .drop: throw TransferError.droppedByFault(at: position)
        case .powerLoss: throw TransferError.powerLoss(at: position)
        case .stall:
            // The link stalls: the device gets nothing (its read timeout keeps running).
            try await Task.sleep(for: .seconds(faults.plan.stallSeconds))
            if io.watchdog.fired { throw TransferError.timeout(phase: "body (stalled \(faults.plan.stallSeconds) s)") }
        }
    }

    /// Sleeps so that delivery does not exceed `rate` bytes per second.
    private mutating func pace(_ count: Int, watchdog: IdleWatchdog) async throws {
        guard let rate, rate > 0 else { return }
        let clock = ContinuousClock()
        let start = rateStart ?? clock.now
        rateStart = start
        rateDelivered += count
        let due = start + .milliseconds(Int64(Double(rateDelivered) / Double(rate) * 1000))
        if due > clock.now {
            watchdog.touch()  // reading slowly is still reading
            try await Task.sleep(until: due, clock: clock)
            watchdog.touch()
        }
    }
}
