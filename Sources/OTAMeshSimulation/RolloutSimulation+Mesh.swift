import OTAMeshRollout

/// The replication between simulated gateways (rumour and push-pull), the periodic checks and
/// the result.
extension RolloutSimulation {
    /// Bytes of UDP/IP headers plus the keyring's nonce and tag, per packet or stream leg.
    static let packetHeader = 28 + 12 + 16 + 4
    /// Bytes naming one range of one owner's log (owner id, first and last version).
    static let itemHeader = 12
    /// Bytes per owner in a push-pull digest (owner id and its version).
    static let digestEntry = 12
    /// Records learned by push-pull that are gossiped on, per exchange (as the mesh does).
    static let regossipLimit = 64

    func bytes(of item: Item) -> Int {
        Self.itemHeader + sums[Int(item.owner)][Int(item.to)] - sums[Int(item.owner)][Int(item.from) - 1]
    }

    mutating func count(_ bytes: Int, sent gateway: Int? = nil, received receiver: Int? = nil, rumour: Bool) {
        for index in [gateway, receiver].compactMap({ $0 }) {
            if gateway == index { gateways[index].sent += bytes } else { gateways[index].received += bytes }
            if rumour { gateways[index].rumourBytes += bytes }
            let bin = Int(now / window)
            if windows[index].count <= bin { windows[index].append(contentsOf: [Int](repeating: 0, count: bin + 1 - windows[index].count)) }
            windows[index][bin] += bytes
        }
    }

    /// Queues a range for rumour, split so each piece fits a packet.
    mutating func enqueue(_ item: Item, at gateway: Int) {
        var from = item.from
        let budget = scenario.packetBytes - Self.packetHeader - Self.itemHeader
        while from <= item.to {
            var to = from
            while to < item.to, sums[Int(item.owner)][Int(to + 1)] - sums[Int(item.owner)][Int(from) - 1] <= budget { to += 1 }
            gateways[gateway].lanes[0].items.append(Item(owner: item.owner, from: from, to: to))
            gateways[gateway].queued += 1
            from = to + 1
        }
    }

    /// What ``BroadcastQueue/take(budget:maxCount:limit:)`` does for one packet: fewest transmits
    /// first, oldest first among equals, an item too big for the room left passed over; each item
    /// taken counts one transmit and leaves after `retransmits`.
    mutating func take(at gateway: Int) -> (items: [Item], bytes: Int) {
        var room = scenario.packetBytes - Self.packetHeader
        var items: [Item] = []
        var promoted: [(lane: Int, item: Item)] = []
        let smallest = Self.itemHeader + 40
        lanes: for lane in 0..<retransmits {
            guard gateways[gateway].lanes[lane].head < gateways[gateway].lanes[lane].items.count else { continue }
            var entry = Lane()
            swap(&entry, &gateways[gateway].lanes[lane])  // no copy of the lane's storage
            var skipped: [Item] = []
            var index = entry.head
            while index < entry.items.count {
                guard room >= smallest else { break }
                let item = entry.items[index]
                let size = bytes(of: item)
                if size <= room {
                    room -= size
                    items.append(item)
                    promoted.append((lane, item))
                } else {
                    skipped.append(item)
                }
                index += 1
            }
            // Put what was passed over back just before the first unscanned item, in order.
            entry.head = index - skipped.count
            for (offset, item) in skipped.enumerated() { entry.items[entry.head + offset] = item }
            if entry.head > 1_024, entry.head * 2 > entry.items.count {
                entry.items.removeFirst(entry.head)
                entry.head = 0
            }
            gateways[gateway].lanes[lane] = entry
            if room < smallest { break lanes }
        }
        for (lane, item) in promoted {
            if lane + 1 < retransmits {
                gateways[gateway].lanes[lane + 1].items.append(item)
            } else {
                gateways[gateway].queued -= 1
            }
        }
        return (items, scenario.packetBytes - room)
    }

    /// One gossip round: to each of `fanout` random peers a packet taken from the queue (nothing
    /// when the queue is empty, as memberlist's `gossip()`).
    mutating func gossip(_ gateway: Int) {
        guard gateways[gateway].queued > 0 else { return }
        var peers: [Int] = []
        let fanout = min(scenario.fanout, scenario.gateways - 1)
        while peers.count < fanout {
            let peer = Int(peerRandom.next() % UInt64(scenario.gateways))
            if peer != gateway, !peers.contains(peer) { peers.append(peer) }
        }
        for peer in peers {
            guard gateways[gateway].queued > 0 else { break }
            let (items, size) = take(at: gateway)
            guard !items.isEmpty else { break }
            packets += 1
            count(size, sent: gateway, rumour: true)
            if lossRandom.unit() < scenario.loss {
                lost += 1
                continue
            }
            queue.schedule(.packet(from: gateway, to: peer, items, bytes: size), at: now + scenario.latency)
        }
    }

    func heard(_ item: Item, at gateway: Int) -> Bool {
        item.to <= gateways[gateway].held[Int(item.owner)] || forwarded[gateway].contains(Int(item.owner) << 32 | Int(item.from))
    }

    /// Whether a record travels by rumour: everything (as built), or only the marks.
    func rumoured(_ entry: Entry) -> Bool {
        scenario.rumour == .all || entry.isMark
    }

    mutating func receive(_ items: [Item], at gateway: Int) {
        for item in items where Int(item.owner) != gateway {
            if let new = take(item, at: gateway, keep: true) {
                for piece in rumourPieces(of: new) { enqueue(piece, at: gateway) }
            } else if scenario.rumour == .marks, item.from == item.to, !heard(item, at: gateway) {
                // A mark beyond the prefix took effect: pass it on once.
                forwarded[gateway].insert(Int(item.owner) << 32 | Int(item.from))
                enqueue(item, at: gateway)
            }
        }
    }

    /// Push-pull with one random peer: each side sends its digest (one version per owner) and
    /// the ranges the other lacks. Fails across the partition.
    mutating func pushPull(_ gateway: Int) {
        var peer = Int(peerRandom.next() % UInt64(scenario.gateways - 1))
        if peer >= gateway { peer += 1 }
        pushPulls += 1
        let digest = Self.packetHeader + Self.digestEntry * scenario.gateways
        if partitioned(gateway, peer, at: now) {
            count(digest, sent: gateway, rumour: false)
            return
        }
        var toGateway: [Item] = []
        var toPeer: [Item] = []
        for owner in 0..<scenario.gateways {
            let (mine, theirs) = (gateways[gateway].held[owner], gateways[peer].held[owner])
            if theirs > mine { toGateway.append(Item(owner: Int32(owner), from: mine + 1, to: theirs)) }
            if mine > theirs { toPeer.append(Item(owner: Int32(owner), from: theirs + 1, to: mine)) }
        }
        let toGatewayBytes = toGateway.reduce(0) { $0 + bytes(of: $1) }
        let toPeerBytes = toPeer.reduce(0) { $0 + bytes(of: $1) }
        count(digest + toPeerBytes, sent: gateway, rumour: false)
        count(digest + toPeerBytes, received: peer, rumour: false)
        count(digest + toGatewayBytes, sent: peer, rumour: false)
        count(digest + toGatewayBytes, received: gateway, rumour: false)
        for (receiver, items) in [(gateway, toGateway), (peer, toPeer)] {
            var regossiped = 0
            for item in items {
                guard let new = take(item, at: receiver, keep: false) else { continue }
                for piece in rumourPieces(of: new) where regossiped < Self.regossipLimit {
                    enqueue(piece, at: receiver)
                    regossiped += 1
                }
            }
        }
    }

    /// The parts of a range that travel by rumour: all of it, or each mark on its own.
    func rumourPieces(of item: Item) -> [Item] {
        guard scenario.rumour == .marks else { return [item] }
        return (item.from...item.to).filter { logs[Int(item.owner)][Int($0) - 1].isMark }.map { Item(owner: item.owner, from: $0, to: $0) }
    }

    // MARK: Checks

    var totalRecords: Int { logs.reduce(0) { $0 + $1.count } }

    /// Once a second: the stages each side holds during the partition, the catch-up after the
    /// heal, and whether the run has settled.
    mutating func check() {
        if let partition = scenario.partition, now >= partition.start, now < partition.end {
            for (gateway, entry) in gateways.enumerated() {
                guard let stage = entry.state.stage?.stage else { continue }
                if inGroup[gateway] { minorityStage = max(minorityStage ?? 0, stage) } else { majorityStage = max(majorityStage ?? 0, stage) }
            }
        }
        let healed = scenario.partition.map { now >= $0.end + scenario.rejoinSeconds } ?? true
        if let partition = scenario.partition, now >= partition.end, catchUpAt == nil {
            let top = gateways.compactMap { $0.state.stage?.stage }.max()
            let halted = haltWriters > 0
            if gateways.allSatisfy({ ($0.state.halt != nil || !halted) && $0.state.stage?.stage == top }) { catchUpAt = now }
        }
        guard healed, inFlightTotal == 0, scenario.partition == nil || catchUpAt != nil else { return }
        let total = totalRecords
        guard gateways.allSatisfy({ $0.heldTotal == total }) else { return }
        for gateway in gateways.indices {
            let mode = refreshView(gateway).mode
            guard mode == .halted || mode == .completed || mode == .aborted else { return }
        }
        endedAt = now
    }

    // MARK: Result

    /// The state without outcomes: commands, census, halt and stage.
    static func controlPart(_ state: RolloutState) -> RolloutState {
        var part = RolloutState(id: state.id)
        for copies in state.commands.values { for copy in copies.values { part.add(copy) } }
        for (gateway, census) in state.census { part.setCensus(census, gateway: gateway) }
        if let halt = state.halt { part.setHalt(halt) }
        if let stage = state.stage { part.setStage(stage) }
        return part
    }

    /// Everything `gateway` holds as one ``RolloutState`` (every outcome included), rebuilt from
    /// the records independently of the incremental path.
    public func materializedState(of gateway: Int) -> RolloutState {
        var state = RolloutState(id: Self.rolloutID)
        for owner in 0..<scenario.gateways {
            let held = Int(gateways[gateway].held[owner])
            guard held > 0 else { continue }
            for entry in logs[owner][0..<held] {
                switch entry.record {
                case .command(let copy): state.add(copy)
                case let .outcome(device, outcome, _): state.record(outcome, device: facts[device].id)
                case .census(let census): state.setCensus(census, gateway: names[owner])
                case .halt(let mark): state.setHalt(HaltMark(epoch: mark.epoch, at: mark.at, gateway: names[owner], reason: mark.reason))
                case .stage(let mark): state.setStage(StageMark(stage: mark.stage, since: mark.since, gateway: names[owner]))
                }
            }
        }
        return state
    }

    /// The view `gateway` acts on (incremental), for checks.
    public mutating func view(of gateway: Int) -> RolloutView { refreshView(gateway) }

    public var gatewayCount: Int { scenario.gateways }

    /// Equal states everywhere: the same records of every owner, hence the same outcomes, the
    /// same tally and the same commands, census, halt and stage; and two gateways' full states
    /// (the first and the last), rebuilt from their records, equal.
    public func statesEqual() -> Bool {
        let total = totalRecords
        guard gateways.allSatisfy({ $0.heldTotal == total }) else { return false }
        let control = Self.controlPart(gateways[0].state)
        let tally = gateways[0].tally
        for entry in gateways.dropFirst() {
            guard entry.tally == tally, Self.controlPart(entry.state) == control else { return false }
        }
        return materializedState(of: 0) == materializedState(of: scenario.gateways - 1)
    }

    mutating func result() -> RolloutSimulationResult {
        let end = endedAt ?? now
        var modes: [String: Int] = [:]
        for gateway in gateways.indices { modes[refreshView(gateway).mode.rawValue, default: 0] += 1 }
        let planTimes = gateways.map(\.planAt)
        let planEverywhere = planTimes.allSatisfy { $0 != nil } ? planTimes.compactMap { $0 }.max().map { $0 - scenario.planAt } : nil
        func haltSpread(_ members: [Int]) -> Double? {
            guard let thresholdAt, !members.isEmpty else { return nil }
            let times = members.map { gateways[$0].haltAt }
            return times.allSatisfy { $0 != nil } ? times.compactMap { $0 }.max().map { max(0, $0 - thresholdAt) } : nil
        }
        let live = scenario.partition == nil ? Array(gateways.indices) : gateways.indices.filter { !inGroup[$0] }
        let perGateway = gateways.map { Double($0.sent + $0.received) / max(end, 1) }
        let peak = windows.map { $0.max() ?? 0 }.max() ?? 0
        let all = gateways.reduce(0) { $0 + $1.sent + $1.received }
        let rumour = gateways.reduce(0) { $0 + $1.rumourBytes }
        return RolloutSimulationResult(
            gateways: scenario.gateways, devices: facts.count, matching: facts.filter { $0.hardware == "esp32" }.count,
            lossPercent: scenario.loss * 100, seed: scenario.seed, planEverywhereSeconds: planEverywhere,
            advances: advances.values.sorted { $0.stage < $1.stage }, thresholdAt: thresholdAt, haltWriters: haltWriters,
            haltLiveSeconds: haltSpread(live), haltAllSeconds: haltSpread(Array(gateways.indices)), startsAfterHalt: startsAfterHalt,
            minorityAdvances: minorityAdvances, minorityStage: minorityStage, majorityStage: majorityStage,
            catchUpSeconds: catchUpAt.flatMap { at in scenario.partition.map { at - $0.end } }, statesEqual: statesEqual(), modes: modes,
            started: started, succeeded: succeeded, failed: failed, records: totalRecords, packets: packets, lost: lost, blocked: blocked,
            pushPulls: pushPulls, meanBytesPerSecond: perGateway.reduce(0, +) / Double(max(1, perGateway.count)),
            maxBytesPerSecond: perGateway.max() ?? 0, peakBytesPerSecond: Double(peak) / window,
            rumourShare: all > 0 ? Double(rumour) / Double(all) : 0, endedAt: end)
    }
}

/// How the shared upkeep tick lands in the simulated gateway ``RolloutSimulation/ticking``.
extension RolloutSimulation: RolloutUpkeepSink {
    public typealias Device = Int

    public mutating func writeCensus(_ perStage: [Int], rollout: String, now: Int64) {
        let own = gateways[ticking].state.census[names[ticking]]
        write(.census(Census(version: (own?.version ?? 0) + 1, perStage: perStage, at: now)), at: ticking)
    }

    public mutating func timedOut(_ outcome: DeviceOutcome, device: Int, rollout: String, now: Int64) {
        record(outcome, device: device, at: ticking)
    }

    /// Devices ask in bucket order; the first "wait" (halted, paused, concurrency used up) holds
    /// for the rest too.
    public mutating func startDevices(rollout: String, view: RolloutView, now millis: Int64) -> RolloutView {
        let gateway = ticking
        guard let plan = view.plan else { return view }
        var index = 0
        let bound = plan.bound(ofStage: view.stage)
        while index < gateways[gateway].untouched.count {
            let device = gateways[gateway].untouched[index]
            guard buckets[device] < bound else { break }
            let held = gateways[gateway].state.outcomes[facts[device].id]
            let decision = view.decide(
                facts[device], version: "1.9.0", outcome: held, inFlightHere: gateways[gateway].inFlight.count,
                now: millis, gateway: names[gateway])
            switch decision {
            case .start(let outcome):
                if gateways[gateway].state.halt.map({ $0.epoch >= view.controlEpoch }) == true { startsAfterHalt += 1 }
                gateways[gateway].untouched.remove(at: index)
                gateways[gateway].inFlight.insert(device)
                inFlightTotal += 1
                started += 1
                record(outcome, device: device, at: gateway)
                let span = scenario.installSeconds.upperBound - scenario.installSeconds.lowerBound
                let duration = scenario.installSeconds.lowerBound + deviceRandom.unit() * span
                let chance = scenario.badGateways.contains(gateway) ? scenario.badFailure : scenario.failure
                queue.schedule(.device(gateway: gateway, device: device, fails: deviceRandom.unit() < chance), at: self.now + duration)
            case .wait:
                index = gateways[gateway].untouched.count
            case .notSelected, .alreadyCurrent, .inFlight, .succeeded, .failedBefore:
                index += 1
            }
        }
        return refreshView(gateway)
    }

    public mutating func members(rollout: String) -> (count: Int, alive: Set<String>) {
        let gateway = ticking
        let alive = aliveView(gateway)
        let seen =
            alive.acrossCut
            ? Set(gateways[gateway].state.census.keys)
            : Set(gateways[gateway].state.census.keys.filter { key in Self.index(of: key).map { inGroup[$0] == inGroup[gateway] } ?? false })
        return (scenario.stageMembers == .alive ? alive.count : scenario.gateways, seen)
    }

    public mutating func writeMarks(_ marks: RolloutUpkeep.Marks, rollout: String, view: RolloutView, now: Int64) {
        if let mark = marks.stage {
            noteAdvance(mark, by: ticking)
            write(.stage(mark), at: ticking)
        }
        if let mark = marks.halt {
            haltWriters += 1
            write(.halt(mark), at: ticking)
        }
    }
}
