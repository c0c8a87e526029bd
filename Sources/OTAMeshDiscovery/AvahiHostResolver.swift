import Foundation
import Synchronization

/// Resolves an mDNS host name (`NAME.local`, as a resolve reports it) to an address. Avahi's
/// dns_sd compat library has no `DNSServiceGetAddrInfo`, so this asks avahi-daemon through
/// `avahi-resolve-host-name` (avahi-utils, same D-Bus as the compat library). IPv4 first, then
/// IPv6; answers are cached for ``ttl``.
public final class AvahiHostResolver: Sendable {
    public static let ttl: Double = 60
    private let cache = Mutex<[String: (address: String, at: Double)]>([:])
    private let timeout: Double

    public init(timeout: Double = 5) {
        self.timeout = timeout
    }

    /// The address of `host` (an IP literal is returned as is), or why it could not be found.
    public func address(of host: String) async -> Result<String, ResolveFailure> {
        let name = host.hasSuffix(".") ? String(host.dropLast()) : host
        if let literal = IPLiteral.dialable(name) { return .success(literal) }
        let now = Date().timeIntervalSince1970
        if let hit = cache.withLock({ $0[name] }), now - hit.at < Self.ttl { return .success(hit.address) }
        var last = ResolveFailure(host: name, reason: "no answer")
        for family in ["-4", "-6"] {
            switch await Self.run(["avahi-resolve-host-name", family, name], timeout: timeout) {
            case .success(let output):
                if let address = Self.parse(output, host: name) {
                    cache.withLock { $0[name] = (address, now) }
                    return .success(address)
                }
                last = ResolveFailure(host: name, reason: "avahi-resolve-host-name \(family) gave no address")
            case .failure(let failure):
                last = ResolveFailure(host: name, reason: failure.reason)
            }
        }
        return .failure(last)
    }

    /// `NAME<TAB>ADDRESS` → the address, if it is an IP literal.
    static func parse(_ output: String, host: String) -> String? {
        for line in output.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.count >= 2, let literal = IPLiteral.dialable(fields[1]) { return literal }
        }
        return nil
    }

    static func run(_ argv: [String], timeout: Double) async -> Result<String, RunFailure> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        let finished = await withCheckedContinuation { (continuation: CheckedContinuation<Bool?, Never>) in
            let once = Mutex(false)
            let resume: @Sendable (Bool?) -> Void = { value in
                if once.withLock({
                    let first = !$0; $0 = true; return first
                }) {
                    continuation.resume(returning: value)
                }
            }
            process.terminationHandler = { _ in resume(true) }
            do { try process.run() } catch {
                resume(nil)
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                if process.isRunning { process.terminate() }
                resume(false)
            }
        }
        guard let finished else { return .failure(RunFailure(reason: "\(argv[0]) could not be started (avahi-utils installed?)")) }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        guard finished else { return .failure(RunFailure(reason: "\(argv[0]): no answer within \(Int(timeout)) s")) }
        guard process.terminationStatus == 0 else { return .failure(RunFailure(reason: "\(argv[0]) exited with \(process.terminationStatus)")) }
        return .success(String(decoding: data, as: UTF8.self))
    }
}

public struct ResolveFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var reason: String
    public var description: String { "\(host): cannot resolve: \(reason)" }
}

struct RunFailure: Error {
    var reason: String
}
