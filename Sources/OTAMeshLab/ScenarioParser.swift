/// Parses `scenario:`: a list of one-key mappings (`- kill: gw2`), see docs/lab.md.
enum ScenarioParser {
    static let stepKeys = [
        "wait", "kill", "stop", "start", "partition", "heal", "loss", "rate", "delay", "sleep",
        "rollout", "halt", "resume", "devices", "configure", "say",
    ]
    static let rolloutKeys = [
        "name", "target", "select", "stages", "soak", "success", "max-failures", "min-finished", "concurrency",
        "device-timeout", "at", "signed-by", "configuration",
    ]
    /// What `otamesh rollout status` reports as `mode`.
    static let rolloutModes = ["awaiting approval", "running", "paused", "halted", "aborted", "completed"]

    static func parse(
        _ cursor: YAMLCursor, networks: [Network], gateways: [Gateway], devices: [DeviceGroup] = [],
        origin: Origin? = nil
    ) throws(TopologyError) -> [ScenarioStep] {
        var context = Context(gateways: gateways, devices: devices, origin: origin)
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
            if let rolloutStep = try context.rolloutStep(key, value) {
                steps.append(rolloutStep)
            } else {
                steps.append(try step(key, value, networks: networks, gateways: gateways))
            }
        }
        return steps
    }

    /// What rollout steps refer to: gateways, device groups, origin targets, and the rollouts
    /// started by earlier steps.
    struct Context {
        let gateways: [Gateway]
        let devices: [DeviceGroup]
        let origin: Origin?
        /// Names of rollouts started (not refused) by earlier steps; every rollout step's name.
        var started: [String] = []
        var named: Set<String> = []

        func gateway(_ cursor: YAMLCursor) throws(TopologyError) -> String { try ScenarioParser.gateway(cursor, in: gateways) }

        func startedRollout(_ cursor: YAMLCursor) throws(TopologyError) -> String {
            let name = try cursor.string()
            guard started.contains(name) else {
                throw cursor.fail(
                    "no earlier step starts rollout '\(name)'"
                        + (started.isEmpty ? "" : " (started before this step: \(started.joined(separator: ", ")))"))
            }
            return name
        }

        /// `signed-by: admin-a` or `[admin-a, admin-b]` or `nobody`.
        static func signers(_ cursor: YAMLCursor?, default fallback: Signers) throws(TopologyError) -> Signers {
            guard let cursor else { return fallback }
            let items = try (cursor.node.scalar != nil ? [cursor] : cursor.sequence())
            let known = LabAdmin.allCases.map(\.rawValue) + ["nobody"]
            var admins: [LabAdmin] = []
            for item in items {
                let text = try item.string()
                if text == "nobody" {
                    guard items.count == 1 else { throw item.fail("'nobody' stands alone (an unsigned command)") }
                    return .nobody
                }
                guard let admin = LabAdmin(rawValue: text) else {
                    throw item.fail("unknown signer '\(text)' (known: \(known.joined(separator: ", ")))")
                }
                if admins.contains(admin) { throw item.fail("signer '\(text)' is listed twice") }
                admins.append(admin)
            }
            guard !admins.isEmpty else { throw cursor.fail("list at least one signer (\(known.joined(separator: ", ")))") }
            return .admins(admins)
        }

        /// The step for a rollout key (or a `wait` on a rollout), nil for every other step.
        mutating func rolloutStep(_ key: String, _ value: YAMLCursor) throws(TopologyError) -> ScenarioStep? {
            switch key {
            case "rollout": return .rollout(try rollout(value))
            case "wait":
                let waitKeys = ["converged", "failed", "alive", "by", "timeout", "rollout", "mode", "discovered", "at", "configured", "with"]
                if value.node.mapping != nil, try value.mapping(allowed: waitKeys)["configured"] != nil {
                    return try configuredWait(value)
                }
                guard value.node.mapping != nil, let rolloutField = try value.mapping(allowed: waitKeys)["rollout"] else {
                    return nil
                }
                let fields = try value.mapping(allowed: ["rollout", "mode", "timeout"])
                let name = try startedRollout(rolloutField)
                let modeField = try fields.required("mode")
                let mode = try modeField.string()
                guard ScenarioParser.rolloutModes.contains(mode) else {
                    throw modeField.fail("unknown mode '\(mode)' (known: \(ScenarioParser.rolloutModes.joined(separator: ", ")))")
                }
                let timeout = try fields["timeout"]?.duration() ?? ScenarioStep.defaultWaitTimeout
                guard timeout > 0 else { throw try fields.required("timeout").fail("a wait needs a timeout above zero") }
                return .rolloutMode(name, mode: mode, timeout: timeout)
            case "halt":
                let fields = try value.mapping(allowed: ["rollout", "at", "reason"])
                return .halt(
                    try startedRollout(fields.required("rollout")), at: try gateway(fields.required("at")),
                    reason: try fields["reason"]?.string() ?? "halted by the lab scenario")
            case "resume":
                let fields = try value.mapping(allowed: ["rollout", "at", "signed-by"])
                let signers = try Self.signers(fields["signed-by"], default: .admins(LabAdmin.trusted))
                if case .admins(let admins) = signers, admins.contains(.rogue), admins.count > 1 {
                    throw try fields.required("signed-by").fail("a refusal check is signed by 'rogue' alone or by 'nobody'")
                }
                let at = try fields["at"].map { cursor throws(TopologyError) in try gateway(cursor) }
                guard let at = at ?? (signers.mustBeRefused ? gateways.first?.name : nil) else {
                    throw value.fail("missing required key 'at' (the gateway that receives the resume)")
                }
                return .resume(try startedRollout(fields.required("rollout")), at: at, signers: signers)
            case "devices":
                let fields = try value.mapping(allowed: ["group", "faults", "version"])
                let groupField = try fields.required("group")
                let group = try groupField.string()
                guard devices.contains(where: { $0.name == group }) else {
                    throw groupField.fail("unknown device group '\(group)' (known: \(devices.map(\.name).joined(separator: ", ")))")
                }
                let faults = try fields["faults"].map { cursor throws(TopologyError) in try TopologyFile.faults(cursor) } ?? []
                if !faults.isEmpty, let push = devices.first(where: { $0.name == group && $0.isPush }) {
                    throw groupField.fail("faults do not apply to push family \(push.family) (give the group a 'fail' instead)")
                }
                return .devices(group: group, faults: faults, version: try fields["version"]?.string())
            case "configure":
                return .configure(try configure(value))
            case "say":
                return .say(try value.string())
            default:
                return nil
            }
        }

        /// A group whose devices check a filesystem (`filesystem:` in its entry).
        func filesystemGroup(_ cursor: YAMLCursor) throws(TopologyError) -> String {
            let name = try cursor.string()
            guard let group = devices.first(where: { $0.name == name }) else {
                throw cursor.fail("unknown device group '\(name)' (known: \(devices.map(\.name).joined(separator: ", ")))")
            }
            guard group.filesystem != nil else {
                throw cursor.fail("device group '\(name)' checks no filesystem (give it 'filesystem: spiffs:…' or 'littlefs:…')")
            }
            return name
        }

        /// `{prop: value, …}`: at least one, values as written.
        static func settings(_ cursor: YAMLCursor) throws(TopologyError) -> [(String, String)] {
            var settings: [(String, String)] = []
            for (prop, value) in try cursor.mappingPairs() {
                guard !prop.isEmpty, prop.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }) else {
                    throw value.fail("property name '\(prop)' must be letters, digits, '_', '-' or '.'")
                }
                settings.append((prop, try value.string()))
            }
            guard !settings.isEmpty else { throw cursor.fail("give at least one prop: value") }
            return settings
        }

        /// `configure: {group, at, app?, set: {prop: value}}`.
        func configure(_ value: YAMLCursor) throws(TopologyError) -> ConfigureSpec {
            let fields = try value.mapping(allowed: ["group", "at", "app", "set"])
            let group = try filesystemGroup(fields.required("group"))
            var app: String?
            if let field = fields["app"] {
                let text = try field.string()
                let parts = text.split(separator: "@", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw field.fail("expected NAME@VERSION (otamesh apps), got '\(text)'") }
                app = text
            }
            return ConfigureSpec(group: group, at: try gateway(fields.required("at")), app: app, settings: try Self.settings(fields.required("set")))
        }

        /// `wait: {configured: GROUP, with: {prop: value}, timeout: 60s}`.
        func configuredWait(_ value: YAMLCursor) throws(TopologyError) -> ScenarioStep {
            let fields = try value.mapping(allowed: ["configured", "with", "timeout"])
            let group = try filesystemGroup(fields.required("configured"))
            let settings = try Self.settings(fields.required("with"))
            let timeout = try fields["timeout"]?.duration() ?? ScenarioStep.defaultWaitTimeout
            guard timeout > 0 else { throw try fields.required("timeout").fail("a wait needs a timeout above zero") }
            return .wait(.configured(group, settings: Dictionary(settings, uniquingKeysWith: { $1 })), timeout: timeout)
        }

        mutating func rollout(_ value: YAMLCursor) throws(TopologyError) -> RolloutSpec {
            let fields = try value.mapping(allowed: ScenarioParser.rolloutKeys)
            let nameField = try fields.required("name")
            let name = try nameField.name(maxLength: 32, what: "rollout name")
            guard named.insert(name).inserted else { throw nameField.fail("rollout name '\(name)' is used twice") }
            let targetField = try fields.required("target")
            let target = try targetField.string()
            if let origin, !origin.releases.contains(where: { $0.path == target }) {
                throw targetField.fail("'\(target)' is not one of the origin's releases (\(origin.releases.map(\.path).joined(separator: ", ")))")
            }
            var stages: [Int] = []
            let stagesField = try fields.required("stages")
            for item in try stagesField.sequence() {
                let stage = try item.int(in: 1...100)
                guard stage > (stages.last ?? 0) else { throw item.fail("stages rise: \(stage) after \(stages.last ?? 0)") }
                stages.append(stage)
            }
            guard stages.last == 100 else { throw stagesField.fail("the last stage must be 100 (cumulative percentages, like [1, 100])") }
            var maxFailures: [String] = []
            if let limits = fields["max-failures"] {
                for item in try (limits.node.scalar != nil ? [limits] : limits.sequence()) {
                    let text = try item.string()
                    let number = text.hasSuffix("%") ? String(text.dropLast()) : text
                    guard let count = Int(number), count >= 0, !text.hasSuffix("%") || count <= 100 else {
                        throw item.fail("expected a count like 0 or a share like 5%, got '\(text)'")
                    }
                    maxFailures.append(text)
                }
            }
            let soak = try fields["soak"]?.duration() ?? 2
            guard soak >= 1 else { throw try fields.required("soak").fail("soak is at least 1s (otamesh rollout counts whole seconds)") }
            let signers = try Self.signers(fields["signed-by"], default: .admins(LabAdmin.trusted))
            if case .admins(let admins) = signers, admins.contains(.rogue), admins.count > 1 {
                throw try fields.required("signed-by").fail("a refusal check is signed by 'rogue' alone or by 'nobody'")
            }
            let spec = RolloutSpec(
                name: name, target: target, select: try fields["select"]?.string() ?? "", stages: stages, soak: soak,
                success: try fields["success"].map { cursor throws(TopologyError) in Int(try cursor.percent().rounded()) },
                maxFailures: maxFailures,
                minFinished: try fields["min-finished"]?.int(in: 0...100_000),
                concurrency: try fields["concurrency"]?.int(in: 1...1000),
                deviceTimeout: try fields["device-timeout"]?.duration(),
                at: try gateway(fields.required("at")), signers: signers, configuration: try fields["configuration"]?.bool() ?? false)
            if !signers.mustBeRefused { started.append(name) }
            return spec
        }
    }

    /// A gateway the topology names, or an error that lists the known ones.
    static func gateway(_ cursor: YAMLCursor, in gateways: [Gateway]) throws(TopologyError) -> String {
        let name = try cursor.string()
        guard gateways.contains(where: { $0.name == name }) else {
            throw cursor.fail("unknown gateway '\(name)' (known: \(gateways.map(\.name).joined(separator: ", ")))")
        }
        return name
    }

    static func step(_ key: String, _ value: YAMLCursor, networks: [Network], gateways: [Gateway]) throws(TopologyError) -> ScenarioStep {
        func gateway(_ cursor: YAMLCursor) throws(TopologyError) -> String { try ScenarioParser.gateway(cursor, in: gateways) }
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
            let fields = try value.mapping(allowed: ["converged", "failed", "alive", "by", "timeout", "discovered", "at"])
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
            if let discovered = fields["discovered"] {
                conditions.append(.discovered(try gateway(fields.required("at")), count: try discovered.int(in: 1...100_000)))
            } else if let at = fields["at"] {
                throw at.fail("'at' goes with discovered")
            }
            if conditions == [.converged], let by = fields["by"] { throw by.fail("'by' goes with failed or alive, not converged") }
            guard conditions.count == 1, let condition = conditions.first else {
                throw value.fail("give exactly one of converged, failed, alive or discovered")
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
