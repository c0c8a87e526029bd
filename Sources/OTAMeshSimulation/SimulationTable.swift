/// Fixed-width tables of experiment results. Pure and locale-free: the same results always
/// render to the same bytes.
public enum SimulationTable {
    /// The dissemination table: a header line, then one line per result.
    public static func dissemination(_ results: [DisseminationResult]) -> [String] {
        render(
            [
                ("N", 6), ("loss", 5), ("model", 11), ("rounds→99.9%", 0), ("rounds→100%", 0), ("time→99.9%", 0), ("time→100%", 0), ("periods→100%", 0),
                ("bytes/s/node", 0), ("udp", 7), ("push-pull", 0), ("goal(⌈log2N⌉+4)", 0), ("met", 3),
            ],
            results.map { result in
                [
                    count(result.nodes), percent(result.lossPercent), result.model.rawValue, result.rounds999.map(String.init) ?? "—",
                    result.rounds100.map(String.init) ?? "—", seconds(result.seconds999), seconds(result.seconds100),
                    fixed(result.probePeriods100, 1), count(Int(result.bytesPerSecondPerNode.rounded())),
                    count(Int(result.udpBytesPerSecondPerNode.rounded())), count(Int(result.streamBytesPerSecondPerNode.rounded())),
                    String(result.goalRounds), result.goalMet.map { $0 ? "yes" : "NO" } ?? "—",
                ]
            })
    }

    /// The failure-detection table: a header line, then one line per result.
    public static func failureDetection(_ results: [FailureDetectionResult]) -> [String] {
        render(
            [
                ("N", 6), ("loss", 5), ("1st suspect", 0), ("1st dead", 8), ("dead p50", 8), ("dead max", 8), ("declared by", 0), ("bound", 8),
                ("soak", 6), ("FP suspected", 22), ("FP dead", 18),
            ],
            results.map { result in
                [
                    count(result.nodes), percent(result.lossPercent), seconds(result.firstSuspectedSeconds), seconds(result.firstDeadSeconds),
                    seconds(result.deadP50Seconds), seconds(result.deadMaxSeconds), "\(result.declaredDeadBy)/\(result.observers)",
                    seconds(result.boundSeconds), seconds(result.soakSeconds, digits: 0),
                    ratio(result.falseSuspectedRate, result.falseSuspectedPairs), ratio(result.falseDeadRate, result.falseDeadPairs),
                ]
            })
    }

    /// The partition/heal table: a header line, then one line per result.
    public static func partition(_ results: [PartitionResult]) -> [String] {
        render(
            [
                ("N", 6), ("loss", 5), ("partition", 0), ("rejoin", 6), ("records", 9), ("membership", 0), ("suspected pairs", 0),
                ("dead pairs", 10), ("cross pairs", 11),
            ],
            results.map { result in
                [
                    count(result.nodes), percent(result.lossPercent), seconds(result.partitionSeconds, digits: 0),
                    result.rejoinSeconds.map { seconds($0, digits: 0) } ?? "off", seconds(result.recordsSeconds),
                    result.membershipSeconds.map { "≤ " + seconds($0) } ?? "never", count(result.suspectedPairs), count(result.deadPairs),
                    count(result.crossPairs),
                ]
            })
    }

    /// The rollout table: one line per measure, one column per run (e.g. per loss rate).
    public static func rollout(_ results: [RolloutSimulationResult]) -> [String] {
        func cell(_ transform: (RolloutSimulationResult) -> String) -> [String] { results.map(transform) }
        var rows: [(String, [String])] = [
            ("gateways × devices (matching)", cell { "\(count($0.gateways)) × \(count($0.devices / max(1, $0.gateways))) (\(count($0.matching)))" }),
            ("loss", cell { percent($0.lossPercent) }),
            ("plan at every gateway", cell { seconds($0.planEverywhereSeconds) }),
        ]
        let stages = Set(results.flatMap { result in result.advances.map { $0.stage } }).sorted()
        for stage in stages {
            let percent = results.lazy.compactMap { $0.advances.first { $0.stage == stage }?.percent }.first ?? 0
            rows.append(
                (
                    "stage \(stage + 1) (\(percent) %) from",
                    cell { result in
                        result.advances.first { $0.stage == stage }.map { "\(seconds($0.at)) by \($0.gateway) (\(count($0.writers)) wrote it)" } ?? "—"
                    }
                ))
        }
        rows += [
            ("threshold first crossed", cell { seconds($0.thresholdAt) }),
            ("halt marks written", cell { count($0.haltWriters) }),
            ("halt at every live gateway", cell { seconds($0.haltLiveSeconds) }),
            ("halt at every gateway", cell { seconds($0.haltAllSeconds) }),
            ("starts after halt known", cell { count($0.startsAfterHalt) }),
            ("minority stage advances", cell { count($0.minorityAdvances) }),
            ("stage held in partition min/maj", cell { result in stageNumber(result.minorityStage) + " / " + stageNumber(result.majorityStage) }),
            ("catch-up after heal", cell { seconds($0.catchUpSeconds) }),
            ("states equal at end", cell { $0.statesEqual ? "yes" : "NO" }),
            ("modes at end", cell { result in result.modes.keys.sorted().map { mode in "\(mode) \(count(result.modes[mode] ?? 0))" }.joined(separator: ", ") }),
            ("devices started/ok/failed", cell { "\(count($0.started)) / \(count($0.succeeded)) / \(count($0.failed))" }),
            ("records written", cell { count($0.records) }),
            ("packets sent/lost/blocked", cell { "\(count($0.packets)) / \(count($0.lost)) / \(count($0.blocked))" }),
            ("push-pull exchanges", cell { count($0.pushPulls) }),
            ("B/s per gateway mean", cell { count(Int($0.meanBytesPerSecond.rounded())) }),
            ("B/s per gateway max", cell { count(Int($0.maxBytesPerSecond.rounded())) }),
            ("B/s, busiest gateway·10 s", cell { count(Int($0.peakBytesPerSecond.rounded())) }),
            ("≤ 40 KB/s (busiest 10 s)", cell { $0.peakBytesPerSecond <= 40_000 ? "yes" : "NO" }),
            ("rumour share of bytes", cell { percent(($0.rumourShare * 1000).rounded() / 10) }),
            ("settled at", cell { seconds($0.endedAt) }),
        ]
        let first = rows.map { $0.0.count }.max() ?? 0
        let widths: [Int] = results.indices.map { index in rows.map { $0.1[index].count }.max() ?? 0 }
        func line(_ title: String, _ cells: [String]) -> String {
            var parts: [String] = [title + String(repeating: " ", count: first - title.count)]
            for (index, text) in cells.enumerated() {
                parts.append(String(repeating: " ", count: max(0, widths[index] - text.count)) + text)
            }
            return parts.joined(separator: "  ")
        }
        return rows.map { line($0.0, $0.1) }
    }

    static func stageNumber(_ stage: Int?) -> String { stage.map { String($0 + 1) } ?? "—" }

    /// Cells right-aligned in columns of fixed width (at least the title's), two spaces apart,
    /// so rows printed one at a time line up under one header.
    static func render(_ columns: [(title: String, width: Int)], _ rows: [[String]]) -> [String] {
        let widths = columns.map { max($0.title.count, $0.width) }
        return ([columns.map(\.title)] + rows).map { cells in
            cells.enumerated().map { String(repeating: " ", count: max(0, widths[$0.offset] - $0.element.count)) + $0.element }
                .joined(separator: "  ")
        }
    }

    // MARK: Numbers, without Foundation or locales

    /// `value` with `digits` decimals (half away from zero).
    static func fixed(_ value: Double?, _ digits: Int) -> String {
        guard let value, value.isFinite else { return "—" }
        var scale = 1
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int((abs(value) * Double(scale)).rounded())
        let sign = value < 0 && scaled != 0 ? "-" : ""
        guard digits > 0 else { return sign + String(scaled) }
        let fraction = String(scaled % scale)
        return sign + String(scaled / scale) + "." + String(repeating: "0", count: digits - fraction.count) + fraction
    }

    static func seconds(_ value: Double?, digits: Int = 2) -> String {
        value.map { fixed($0, digits) + " s" } ?? "—"
    }

    static func percent(_ value: Double) -> String { fixed(value, value == value.rounded() ? 0 : 1) + " %" }

    /// A rate as a percentage, with the count it came from.
    static func ratio(_ rate: Double, _ pairs: Int) -> String { fixed(rate * 100, 3) + " % (" + count(pairs) + ")" }

    /// An integer with thin-space-free thousands separators (commas).
    static func count(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (offset, character) in digits.enumerated() {
            if offset > 0, (digits.count - offset) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }
}
