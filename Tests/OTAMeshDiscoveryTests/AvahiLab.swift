import Foundation
import OTAMeshDiscovery
import OTAMeshTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A lab built by Tests/Fixtures/lab/avahi-netns.sh: network namespaces on a private bridge,
/// each with its own D-Bus system bus and avahi-daemon. Nothing touches the host's network.
struct AvahiLab {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let script = "\(packageRoot)/Tests/Fixtures/lab/avahi-netns.sh"
    static var binaries: String { ProcessInfo.processInfo.environment["OTAMESH_BIN_DIR"] ?? "\(packageRoot)/.build/debug" }
    static var probe: String { "\(binaries)/otamesh-mdns-probe" }

    /// Why the lab cannot run here (nil when it can).
    static var unavailableReason: String? {
        guard TestEnvironment.isRoot else { return "needs root (network namespaces)" }
        for tool in ["ip", "avahi-daemon", "dbus-daemon", "dbus-send", "unshare"] where which(tool) == nil {
            return "\(tool) is not installed (make deps installs avahi-daemon dbus iproute2)"
        }
        guard FileManager.default.isExecutableFile(atPath: probe) else {
            return "\(probe) is not built (swift build --product otamesh-mdns-probe)"
        }
        return nil
    }

    static func which(_ tool: String) -> String? {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Node {
        let name: String
        let namespace: String
        let bus: String
        let address: String
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    let directory: String
    let nodes: [String: Node]

    /// Builds the lab in `directory`. Tears down whatever it built if it fails.
    static func up(_ directory: String, _ names: [String]) throws -> AvahiLab {
        let (status, out, err) = try script(["up", directory] + names, timeout: 120)
        guard status == 0 else { throw Failure(description: "avahi-netns.sh up failed (\(status)): \(err)") }
        var nodes: [String: Node] = [:]
        for line in out.split(separator: "\n") {
            let fields = line.split(separator: "\t").map(String.init)
            guard fields.count == 4 else { continue }
            nodes[fields[0]] = Node(name: fields[0], namespace: fields[1], bus: fields[2], address: fields[3])
        }
        guard nodes.count == names.count else { throw Failure(description: "unexpected output from up: \(out)") }
        return AvahiLab(directory: directory, nodes: nodes)
    }

    @discardableResult
    static func script(_ arguments: [String], timeout: Double = 60) throws -> (Int32, String, String) {
        let child = try Child("/bin/bash", [script] + arguments)
        let status = child.wait(timeout: timeout)
        return (status, child.stdout.text, child.stderr.text)
    }

    func down() { _ = try? Self.script(["down", directory]) }

    /// Stops `name`'s avahi-daemon with `signal` ("TERM": clean, goodbyes sent; "KILL": a crash).
    func stopAvahi(_ name: String, signal: String = "TERM") throws {
        let (status, _, err) = try Self.script(["avahi-stop", directory, name, signal])
        guard status == 0 else { throw Failure(description: "avahi-stop \(name): \(err)") }
    }

    func startAvahi(_ name: String) throws {
        let (status, _, err) = try Self.script(["avahi-start", directory, name])
        guard status == 0 else { throw Failure(description: "avahi-start \(name): \(err)") }
    }

    /// Starts the probe in `name`'s namespace, talking to that namespace's avahi-daemon.
    func probe(on name: String, node: String, site: String, gossipPort: UInt16, httpPort: UInt16) throws -> Child {
        guard let lab = nodes[name] else { throw Failure(description: "no node \(name)") }
        return try Child(
            "/bin/bash",
            [
                Self.script, "exec", directory, name, Self.probe, "--name", node, "--site", site,
                "--gossip-port", "\(gossipPort)", "--http-port", "\(httpPort)",
                "--address", lab.address, "--seconds", "120", "--debug",
            ])
    }

    /// Runs a command in `name`'s namespace to completion.
    func run(on name: String, _ command: [String], timeout: Double = 30) throws -> (Int32, String, String) {
        try Self.script(["exec", directory, name] + command, timeout: timeout)
    }

    /// The daemon logs, for failure messages.
    func logs() -> String {
        nodes.keys.sorted().map { name in
            let log = (try? String(contentsOfFile: "\(directory)/\(name)/avahi.log", encoding: .utf8)) ?? ""
            return "--- avahi-daemon \(name):\n\(log.suffix(2_000))"
        }.joined(separator: "\n")
    }

    /// The peers a probe printed, in order (one JSON line each).
    static func peers(_ probe: Child) -> [DiscoveredPeer] {
        probe.stdout.lines.compactMap { try? JSONDecoder().decode(DiscoveredPeer.self, from: Data($0.utf8)) }
    }

    static func count(_ needle: String, in text: String) -> Int {
        text.split(separator: "\n").count(where: { $0.contains(needle) })
    }
}
