import Foundation
import OTAMeshCommon
import Yams

/// Reads a topology YAML file into a validated ``Topology``. Unknown keys, dangling
/// references, overlapping subnets and address clashes are ``TopologyError``s naming the file,
/// the key and the reason. The schema is documented in docs/lab.md.
public enum TopologyFile {
    static let topKeys = ["name", "short", "site", "networks", "origin", "gateways", "devices", "scenario"]

    /// Loads and validates a topology file.
    public static func load(path: String) throws(TopologyError) -> Topology {
        let file = (path as NSString).lastPathComponent
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw TopologyError(file: path, key: "", reason: "cannot read: \((error as NSError).localizedDescription)")
        }
        let directory = (URL(fileURLWithPath: path).standardizedFileURL.path as NSString).deletingLastPathComponent
        return try parse(text, source: file, baseDirectory: directory)
    }

    /// Parses and validates topology text; `source` names it in errors.
    public static func parse(_ text: String, source: String, baseDirectory: String) throws(TopologyError) -> Topology {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw TopologyError(file: source, key: "", reason: "not valid YAML: \(error)")
        }
        guard let root else { throw TopologyError(file: source, key: "", reason: "the file is empty") }
        let top = try YAMLCursor(node: root, path: "", file: source).mapping(allowed: topKeys)

        let name = try top.required("name").name(maxLength: 32, what: "topology name")
        let shortName: String
        if let short = top["short"] {
            shortName = try short.string()
            guard shortName.count <= 4, YAMLCursor.nameProblem(shortName, maxLength: 4, what: "short") == nil, !shortName.contains("-") else {
                throw short.fail("short name '\(shortName)' must be 1…4 characters of a-z and 0-9 (it goes into namespace names)")
            }
        } else {
            shortName = derivedShortName(name)
        }
        let site = try top["site"]?.string() ?? name

        let networks = try parseNetworks(top.required("networks"))
        let origin = try top["origin"].map { cursor throws(TopologyError) in try parseOrigin(cursor, networks: networks, baseDirectory: baseDirectory) }
        let gateways = try parseGateways(top.required("gateways"), networks: networks, origin: origin)
        let devices = try top["devices"].map { cursor throws(TopologyError) in try parseDevices(cursor, networks: networks, gateways: gateways) } ?? []
        let scenario =
            try top["scenario"].map { cursor throws(TopologyError) in
                try ScenarioParser.parse(cursor, networks: networks, gateways: gateways, devices: devices, origin: origin)
            } ?? []

        let topology = Topology(
            source: source, baseDirectory: baseDirectory, name: name, shortName: shortName, site: site,
            networks: networks, origin: origin, gateways: gateways, devices: devices, scenario: scenario)
        // Address assignment is the last check: clashes and addresses outside a subnet.
        _ = try LabLayout(topology)
        return topology
    }

    /// Initials of the name's words (`three-floors` → `tf`), or its first four characters.
    static func derivedShortName(_ name: String) -> String {
        let words = name.split(separator: "-")
        if words.count >= 2 { return String(words.prefix(4).compactMap(\.first)) }
        return String(name.prefix(4))
    }

    static func parseNetworks(_ cursor: YAMLCursor) throws(TopologyError) -> [Network] {
        var networks: [Network] = []
        let pairs = try cursor.mappingPairs()
        guard !pairs.isEmpty else { throw cursor.fail("a lab needs at least one network") }
        for (name, entry) in pairs {
            if let problem = YAMLCursor.nameProblem(name, maxLength: 12, what: "network name") { throw entry.fail(problem) }
            guard name.first?.isLetter == true, name != "lo" else {
                throw entry.fail("network name '\(name)' must start with a letter and not be 'lo' (it names interfaces)")
            }
            let fields = try entry.mapping(allowed: ["subnet", "rate", "delay", "loss"])
            let subnetField = try fields.required("subnet")
            let text = try subnetField.string()
            guard let subnet = IPv4Subnet(text) else {
                throw subnetField.fail("expected an IPv4 subnet like 10.77.0.0/24 (prefix 8…30, no host bits), got '\(text)'")
            }
            guard subnet.isPrivate else { throw subnetField.fail("\(subnet) is not private address space (10/8, 172.16/12, 192.168/16)") }
            if let clash = networks.first(where: { $0.subnet.overlaps(subnet) }) {
                throw subnetField.fail("\(subnet) overlaps network '\(clash.name)' (\(clash.subnet))")
            }
            var shape = LinkShape()
            shape.rate = try fields["rate"]?.rate()
            shape.delay = try fields["delay"]?.duration()
            shape.lossPercent = try fields["loss"]?.percent()
            networks.append(Network(name: name, subnet: subnet, shape: shape))
        }
        return networks
    }

    static func networkReference(_ cursor: YAMLCursor, _ networks: [Network]) throws(TopologyError) -> String {
        let name = try cursor.string()
        guard networks.contains(where: { $0.name == name }) else {
            throw cursor.fail("unknown network '\(name)' (known: \(networks.map(\.name).joined(separator: ", ")))")
        }
        return name
    }

    static func parseOrigin(_ cursor: YAMLCursor, networks: [Network], baseDirectory: String) throws(TopologyError) -> Origin {
        let fields = try cursor.mapping(allowed: ["network", "address", "port", "releases"])
        let network = try networkReference(fields.required("network"), networks)
        let address = try fields["address"]?.address()
        let port = try fields["port"]?.int(in: 1...65535) ?? 8080
        var releases: [Release] = []
        let list = try fields.required("releases").sequence()
        guard !list.isEmpty else { throw try fields.required("releases").fail("an origin needs at least one release") }
        for entry in list {
            let release = try entry.mapping(allowed: ["path", "image", "make", "app"])
            let pathField = try release.required("path")
            let path = try pathField.string()
            guard !path.hasPrefix("/"), !path.split(separator: "/").contains(".."), !path.contains(" ") else {
                throw pathField.fail("target path '\(path)' must be relative, without '..' or spaces")
            }
            if releases.contains(where: { $0.path == path }) { throw pathField.fail("target path '\(path)' is listed twice") }
            let image: Release.Image
            switch (release["image"], release["make"]) {
            case (let file?, nil):
                image = .file(try file.string())
            case (nil, let make?):
                let made = try make.mapping(allowed: ["chip", "version", "size"])
                image = .made(
                    chip: try made["chip"]?.string() ?? "esp32", version: try made.required("version").string(),
                    size: try made["size"]?.int(in: 1...(256 << 20)) ?? 4_096)
            default:
                throw entry.fail("give exactly one of 'image' (a file) or 'make' ({chip, version, size})")
            }
            var app: String?
            if let field = release["app"] {
                let file = try field.string()
                let resolved = file.hasPrefix("/") ? file : "\(baseDirectory)/\(file)"
                guard FileManager.default.fileExists(atPath: resolved) else {
                    throw field.fail("app spec '\(file)' not found (looked at \(resolved)); it is an `otamesh release add-app` spec, docs/apps.md")
                }
                app = file
            }
            releases.append(Release(path: path, image: image, app: app))
        }
        return Origin(network: network, address: address, port: port, releases: releases)
    }

    static func parseGateways(_ cursor: YAMLCursor, networks: [Network], origin: Origin?) throws(TopologyError) -> [Gateway] {
        let pairs = try cursor.mappingPairs()
        guard !pairs.isEmpty else { throw cursor.fail("a lab needs at least one gateway") }
        var gateways: [Gateway] = []
        for (name, entry) in pairs {
            if let problem = YAMLCursor.nameProblem(name, maxLength: 32, what: "gateway name") { throw entry.fail(problem) }
            let fields = try entry.mapping(allowed: ["networks", "upstream", "join", "address"])
            let networkList = try fields.required("networks")
            var attached: [String] = []
            for item in try networkList.sequence() {
                let network = try networkReference(item, networks)
                if attached.contains(network) { throw item.fail("network '\(network)' is listed twice") }
                attached.append(network)
            }
            guard !attached.isEmpty else { throw networkList.fail("a gateway needs at least one network") }
            let upstream = try fields["upstream"]?.bool() ?? false
            if upstream {
                guard let origin else { throw try fields.required("upstream").fail("upstream: true needs an 'origin' section") }
                guard attached.contains(origin.network) else {
                    throw try fields.required("upstream").fail("an upstream gateway must be on the origin's network '\(origin.network)'")
                }
            }
            var addresses: [String: IPv4Address] = [:]
            if let explicit = fields["address"] {
                for (network, value) in try explicit.mappingPairs() {
                    guard attached.contains(network) else { throw value.fail("gateway '\(name)' is not on network '\(network)'") }
                    addresses[network] = try value.address()
                }
            }
            gateways.append(Gateway(name: name, networks: attached, upstream: upstream, join: [], addresses: addresses))
        }
        // Joins refer to gateways anywhere in the list, so they are resolved once all are known.
        for (index, (name, entry)) in pairs.enumerated() {
            guard let joinField = try entry.mapping(allowed: ["networks", "upstream", "join", "address"])["join"] else { continue }
            for item in try joinField.sequence() {
                let target = try item.string()
                guard let peer = gateways.first(where: { $0.name == target }) else {
                    throw item.fail("unknown gateway '\(target)' (known: \(gateways.map(\.name).joined(separator: ", ")))")
                }
                guard target != name else { throw item.fail("a gateway cannot join itself") }
                guard peer.networks.contains(where: gateways[index].networks.contains) else {
                    throw item.fail("gateway '\(name)' shares no network with '\(target)'")
                }
                if gateways[index].join.contains(target) { throw item.fail("gateway '\(target)' is listed twice") }
                gateways[index].join.append(target)
            }
        }
        return gateways
    }

    static func parseDevices(_ cursor: YAMLCursor, networks: [Network], gateways: [Gateway]) throws(TopologyError) -> [DeviceGroup] {
        var devices: [DeviceGroup] = []
        for entry in try cursor.sequence() {
            let fields = try entry.mapping(allowed: [
                "name", "network", "gateway", "family", "count", "version", "interval", "hardware", "faults", "variant", "fail", "filesystem",
            ])
            let nameField = try fields.required("name")
            let name = try nameField.name(maxLength: 32, what: "device name")
            if devices.contains(where: { $0.name == name }) { throw nameField.fail("device name '\(name)' is used twice") }
            let network = try networkReference(fields.required("network"), networks)
            let gatewayField = try fields.required("gateway")
            let gatewayName = try gatewayField.string()
            guard let gateway = gateways.first(where: { $0.name == gatewayName }) else {
                throw gatewayField.fail("unknown gateway '\(gatewayName)' (known: \(gateways.map(\.name).joined(separator: ", ")))")
            }
            guard gateway.networks.contains(network) else {
                throw gatewayField.fail("gateway '\(gatewayName)' is not on network '\(network)', so its devices there cannot reach it")
            }
            let familyField = try fields.required("family")
            let familyName = try familyField.string()
            guard let family = DeviceFamily(known: familyName), DeviceGroup.families.contains(family) else {
                throw familyField.fail("unknown family '\(familyName)' (known: \(DeviceFamily.names(DeviceGroup.families)))")
            }
            let push = DeviceGroup.pushFamilies.contains(family)
            for key in push ? ["interval", "hardware", "faults"] : ["variant", "fail"] {
                if let field = fields[key] {
                    throw field.fail("'\(key)' does not apply to \(push ? "push" : "polling") family \(family)")
                }
            }
            var fail: String?
            if let field = fields["fail"] {
                let text = try field.string()
                let known = DeviceGroup.pushFaults[family] ?? []
                guard known.contains(text) else { throw field.fail("unknown \(family) fault '\(text)' (known: \(known.joined(separator: ", ")))") }
                fail = text
            }
            var filesystem: String?
            if let field = fields["filesystem"] {
                guard DeviceGroup.filesystemFamilies.contains(family) else {
                    throw field.fail(
                        "'filesystem' applies to \(DeviceFamily.names(DeviceGroup.filesystemFamilies)) (their sketches call updateFS), not \(family)")
                }
                let text = try field.string()
                guard text.hasPrefix("spiffs:") || text.hasPrefix("littlefs:") || text == "spiffs" || text == "littlefs" else {
                    throw field.fail("expected spiffs:KEY=VALUE,… or littlefs:KEY=VALUE,… (otamesh-devicesim run --filesystem), got '\(text)'")
                }
                filesystem = text
            }
            devices.append(
                DeviceGroup(
                    name: name, network: network, gateway: gatewayName, family: family,
                    count: try fields["count"]?.int(in: 1...(family == .arduinoOTA ? 500 : 1000)) ?? 1,
                    version: try fields["version"]?.string(),
                    interval: try fields["interval"]?.duration() ?? 5,
                    hardware: try fields["hardware"]?.name(maxLength: 32, what: "hardware"),
                    faults: try fields["faults"].map { cursor throws(TopologyError) in try faults(cursor) } ?? [],
                    variant: try fields["variant"]?.name(maxLength: 32, what: "variant"), fail: fail, filesystem: filesystem))
        }
        return devices
    }

    /// `[corrupt-flash]`: known faults, each once.
    static func faults(_ cursor: YAMLCursor) throws(TopologyError) -> [DeviceFault] {
        var faults: [DeviceFault] = []
        for item in try cursor.sequence() {
            let text = try item.string()
            guard let fault = DeviceFault(rawValue: text) else {
                throw item.fail("unknown fault '\(text)' (known: \(DeviceFault.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if faults.contains(fault) { throw item.fail("fault '\(text)' is listed twice") }
            faults.append(fault)
        }
        return faults
    }
}
