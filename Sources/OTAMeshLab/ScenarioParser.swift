/// Parses `scenario:`: a list of one-key mappings (`- kill: gw2`), see docs/lab.md.
enum ScenarioParser {
    static let stepKeys = ["wait", "kill", "stop", "start", "partition", "heal", "loss", "rate", "delay", "sleep"]

    static func parse(_ cursor: YAMLCursor, networks: [Network], gateways: [Gateway]) throws(TopologyError) -> [ScenarioStep] {
        var steps: [ScenarioStep] = []
        for entry in try cursor.sequence() {
            let pairs: [(String, YAMLCursor)]
            if entry.node.scalar != nil {
                // `- heal` reads as `- heal: true`.
                let word = try entry.string()
                guard word == "heal" else { throw entry.fail("a step is a one-key mapping like '- kill: gw2', got '\(word)'") }
                pairs = [("heal", entry)]
            } else {
                pairs = try entry.mapping(allowed: stepKeys).pairs
            }
            guard pairs.count == 1, let (key, value) = pairs.first else {
                throw entry.fail("a step has exactly one key (one of \(stepKeys.joined(separator: ", ")))")
            }
            steps.append(try step(key, value, networks: networks, gateways: gateways))
        }
        return steps
    }

    static func step(_ key: String, _ value: YAMLCursor, networks: [Network], gateways: [Gateway]) throws(TopologyError) -> ScenarioStep {
        func gateway(_ cursor: YAMLCursor) throws(TopologyError) -> String {
            let name = try cursor.string()
            guard gateways.contains(where: { $0.name == name }) else {
                throw cursor.fail("unknown gateway '\(name)' (known: \(gateways.map(\.name).joined(separator: ", ")))")
            }
            return name
        }
        func network(_ fields: YAMLFields) throws(TopologyError) -> String {
            try TopologyFile.networkReference(fields.required("network"), networks)
        }
        switch key {
        case "wait":
            if value.node.scalar != nil {
                guard try value.string() == "converged" else {
                    throw value.fail("expected 'converged' or a mapping {converged: true | failed: GW | alive: GW, by: [GW…], timeout: 60s}")
                }
                return .wait(.converged, timeout: ScenarioStep.defaultWaitTimeout)
            }
            let fields = try value.mapping(allowed: ["converged", "failed", "alive", "by", "timeout"])
            var observers: [String] = []
            if let by = fields["by"] {
                for item in try by.sequence() { observers.append(try gateway(item)) }
                guard !observers.isEmpty else { throw by.fail("list at least one observing gateway, or leave 'by' out") }
            }
            let timeout = try fields["timeout"]?.duration() ?? ScenarioStep.defaultWaitTimeout
            guard timeout > 0 else { throw try fields.required("timeout").fail("a wait needs a timeout above zero") }
            var conditions: [ScenarioStep.Condition] = []
            if let converged = fields["converged"] {
                guard try converged.bool() else { throw converged.fail("only 'converged: true' means something") }
                conditions.append(.converged)
            }
            if let failed = fields["failed"] { conditions.append(.failed(try gateway(failed), by: observers)) }
            if let alive = fields["alive"] { conditions.append(.alive(try gateway(alive), by: observers)) }
            if conditions == [.converged], let by = fields["by"] { throw by.fail("'by' goes with failed or alive, not converged") }
            guard conditions.count == 1, let condition = conditions.first else {
                throw value.fail("give exactly one of converged, failed or alive")
            }
            return .wait(condition, timeout: timeout)
        case "kill": return .kill(try gateway(value))
        case "stop": return .stop(try gateway(value))
        case "start": return .start(try gateway(value))
        case "partition":
            var groups: [[String]] = []
            var seen: Set<String> = []
            for groupCursor in try value.sequence() {
                var group: [String] = []
                for member in try groupCursor.sequence() {
                    let name = try gateway(member)
                    guard seen.insert(name).inserted else { throw member.fail("gateway '\(name)' is in two groups") }
                    group.append(name)
                }
                guard !group.isEmpty else { throw groupCursor.fail("a group needs at least one gateway") }
                groups.append(group)
            }
            guard groups.count >= 2 else { throw value.fail("a partition needs at least two groups, like [[gw1], [gw2, gw3]]") }
            return .partition(groups)
        case "heal":
            if value.node.scalar?.string != "heal" {
                guard try value.bool() else { throw value.fail("write 'heal: true'") }
            }
            return .heal
        case "loss":
            let fields = try value.mapping(allowed: ["network", "percent"])
            return .link(network: try network(fields), .loss(try fields.required("percent").percent()))
        case "rate":
            let fields = try value.mapping(allowed: ["network", "rate"])
            let rateField = try fields.required("rate")
            let text = try rateField.string()
            return .link(network: try network(fields), .rate(text == "unlimited" ? nil : try rateField.rate()))
        case "delay":
            let fields = try value.mapping(allowed: ["network", "delay"])
            return .link(network: try network(fields), .delay(try fields.required("delay").duration()))
        case "sleep":
            return .sleep(try value.duration())
        default:
            throw value.fail("unknown step '\(key)' (known: \(stepKeys.joined(separator: ", ")))")
        }
    }
}
