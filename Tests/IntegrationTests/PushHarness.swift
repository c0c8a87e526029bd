import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the push-family integration tests share: a devicesim twin (`otamesh-devicesim serve
/// --family …`) started on a free port, and `otamesh device push` with its outcome read back.
struct PushTwin {
    let child: Child
    let address: String
    /// HOST:PORT of the twin's HTTP side, when it serves one apart from `address` (arduino-ota).
    var http: String?

    /// Starts `serve --family family` on 127.0.0.1:0 with `arguments`; waits for its `listening` line.
    static func start(family: String, _ arguments: [String]) throws -> PushTwin {
        let child = try Child(Binaries.devicesim, ["serve", "--family", family, "--listen-base", "127.0.0.1:0"] + arguments)
        let ready = waitUntil(timeout: 30) { child.stdout.text.contains("\"listening\"") || !child.process.isRunning }
        guard ready, let line = child.stdout.lines.first(where: { $0.contains("\"listening\"") }),
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let address = object["address"] as? String
        else {
            child.signal(SIGKILL)
            child.wait()
            throw Gateway.StartFailure(message: "twin did not start: \(child.stdout.text) \(child.stderr.text)")
        }
        return PushTwin(child: child, address: address, http: object["http"] as? String)
    }

    func stop() {
        child.signal(SIGTERM)
        child.wait(timeout: 10)
    }

    /// How many `event` lines the twin printed.
    func count(_ event: String) -> Int { child.stdout.lines.filter { $0.contains("\"event\":\"\(event)\"") }.count }

    /// `otamesh device push --family family` of device `id` at `address`, with `arguments`:
    /// (exit status, its progress lines, the outcome object, or the standard error when there is none).
    static func push(family: String, id: String, to address: String, _ arguments: [String]) throws -> (Int32, [String], [String: String]) {
        let (status, out, err) = try run(["device", "push", "--family", family, "--address", address, "--id", id] + arguments, timeout: 180)
        let lines = out.split(separator: "\n").map(String.init)
        let outcome = lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] } ?? ["stderr": err]
        return (status, lines.filter { $0.hasPrefix("\(id): ") }, outcome)
    }
}
