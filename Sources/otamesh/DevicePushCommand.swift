import ArgumentParser
import Foundation
import OTAMeshDevices

/// `otamesh device push`: one push by hand, outside a rollout — to try a device, or to test an
/// adapter against a twin. Progress lines, then one JSON line with the outcome; exit 1 on failure.
struct DevicePush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Push an image URL to one push device now (projectmm) and wait for its version after reboot.")

    @Option(help: "Device family: projectmm.") var family = "projectmm"
    @Option(help: "The device: HOST or HOST:PORT (port 80 by default).") var address: String
    @Option(help: "Device id for the output.") var id = "device"
    @Option(help: "The image URL the device fetches (http:// or https://, as the device reaches it).") var url: String
    @Option(help: "The version the image carries (success = the device reports it after reboot).") var version: String
    @Option(help: "The image's firmware variant (esp32, esp32-eth, esp32s3-n16r8, …).") var variant: String
    @Option(help: "HTTP proxy the device is reached through (http://HOST:PORT).") var proxy: String?
    @Option(name: .customLong("poll-ms"), help: "Status poll interval, milliseconds.") var pollMS = 1000
    @Option(help: "Seconds until the push fails as timeout.") var deadline = 600.0
    @Option(help: "Seconds the device may be unreachable once it accepted.") var unreachable = 120.0
    @Option(name: .customLong("retry-timeout"), help: "Seconds to retry an unreachable device before it accepted.") var retryTimeout = 30.0
    @Option(name: .customLong("request-timeout"), help: "Seconds per HTTP request.") var requestTimeout = 5.0

    func validate() throws {
        guard family == "projectmm" else { throw ValidationError("--family: only projectmm can be pushed to yet") }
        guard pollMS >= 10, deadline > 0, unreachable > 0, retryTimeout >= 0, requestTimeout > 0 else {
            throw ValidationError("--poll-ms ≥ 10; --deadline, --unreachable, --request-timeout > 0")
        }
    }

    func run() async throws {
        var timing = ProjectMMPush.Timing()
        timing.pollInterval = Int64(pollMS)
        timing.deadline = Int64(deadline * 1000)
        timing.unreachableLimit = Int64(unreachable * 1000)
        timing.retry.retryTimeout = retryTimeout
        let adapter = ProjectMMAdapter(timing: timing, requestTimeout: .milliseconds(Int64(requestTimeout * 1000)))
        let (host, port) = PushTarget.hostAndPort(address, defaultPort: 80)
        let target = PushTarget(id: id, family: family, host: host, port: port, proxy: proxy)
        let path = URL(string: url)?.path ?? url
        let image = PushImage(path: path, sha256: "", length: 0, version: version, file: "", url: url, variant: variant)
        do throws(PushFailure) {
            let reported = try await adapter.push(image, to: target) { phase in Output.out("\(id): \(phase)") }
            Output.out(Output.jsonLine(["device": id, "outcome": "succeeded", "version": reported]))
        } catch {
            Output.out(Output.jsonLine(["device": id, "outcome": "failed", "kind": error.kind.rawValue, "reason": error.reason]))
            throw ExitCode(1)
        }
    }
}
