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

/// tinyproxy on a free loopback port, for pushes to devices reached through an HTTP proxy.
struct TinyProxy {
    let child: Child
    let url: String

    static func start(in directory: TemporaryDirectory) throws -> TinyProxy {
        let binary = "/usr/bin/tinyproxy"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw Gateway.StartFailure(message: "tinyproxy is not installed (make deps installs it)")
        }
        let port = try freeLoopbackPort()
        let conf = directory.file("tinyproxy.conf")
        try "Port \(port)\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nLogLevel Info\nMaxClients 20\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let child = try Child(binary, ["-d", "-c", conf])
        guard waitUntil(timeout: 10, { (try? Socket.connectable(port: port)) == true }) else {
            child.signal(SIGKILL)
            child.wait()
            throw Gateway.StartFailure(message: "tinyproxy did not listen: \(child.stderr.text)")
        }
        return TinyProxy(child: child, url: "http://127.0.0.1:\(port)")
    }

    /// Connections the proxy made to `host` (its log is the witness: AsyncHTTPClient tunnels).
    func connections(to host: String) -> Int {
        (child.stdout.text + child.stderr.text).components(separatedBy: "Established connection to host \"\(host)\"").count - 1
    }

    func stop() {
        child.signal(SIGKILL)
        child.wait(timeout: 10)
    }
}

/// A loopback TCP port nothing listens on right now.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw Gateway.StartFailure(message: "no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

enum Socket {
    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func connectable(port: Int) throws -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
