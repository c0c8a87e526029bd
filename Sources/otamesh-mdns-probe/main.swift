// otamesh-mdns-probe: advertise one node and print the peers MDNSDiscovery finds, one JSON
// line each on stdout (logs go to stderr). Used by the discovery lab tests.
//
//   otamesh-mdns-probe --name gw-a --site lab --gossip-port 7946 --http-port 8080 \
//       --address 10.250.0.11 [--address …] [--seconds 30] [--expect 2] [--debug]
//
// Exits 0 after --seconds, or as soon as --expect distinct peers were seen; 2 when --expect
// was not reached in time; 64 on bad arguments. SIGINT/SIGTERM stop it cleanly (advert
// withdrawn).
import Foundation
import Logging
import OTAMeshDiscovery
import Synchronization

struct Options {
    var name = ""
    var site = ""
    var gossipPort: UInt16 = 0
    var httpPort: UInt16 = 0
    var addresses: [String] = []
    var seconds = 30.0
    var expect: Int?
    var debug = false

    static let usage = "usage: otamesh-mdns-probe --name N --site S --gossip-port P --http-port P --address IP... [--seconds N] [--expect K] [--debug]"

    init(_ arguments: [String]) throws(UsageError) {
        var rest = arguments[...]
        func value(_ flag: String) throws(UsageError) -> String {
            guard let next = rest.popFirst() else { throw UsageError(message: "\(flag) needs a value") }
            return next
        }
        func number<T: LosslessStringConvertible>(_ flag: String, as: T.Type) throws(UsageError) -> T {
            let text = try value(flag)
            guard let parsed = T(text) else { throw UsageError(message: "\(flag): not a number: \(text)") }
            return parsed
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--name": name = try value(flag)
            case "--site": site = try value(flag)
            case "--gossip-port": gossipPort = try number(flag, as: UInt16.self)
            case "--http-port": httpPort = try number(flag, as: UInt16.self)
            case "--address": addresses.append(try value(flag))
            case "--seconds": seconds = try number(flag, as: Double.self)
            case "--expect": expect = try number(flag, as: Int.self)
            case "--debug": debug = true
            default: throw UsageError(message: "unknown argument \(flag)")
            }
        }
        if name.isEmpty || site.isEmpty || gossipPort == 0 || httpPort == 0 {
            throw UsageError(message: "--name, --site, --gossip-port and --http-port are required")
        }
    }
}

struct UsageError: Error { let message: String }

enum Stop: Sendable { case expected, signal }

let options: Options
do {
    options = try Options(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("otamesh-mdns-probe: \(error.message)\n\(Options.usage)\n".utf8))
    exit(64)
}

let debug = options.debug
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = debug ? .debug : .info
    return handler
}
let logger = Logger(label: "otamesh-mdns-probe")

let advert = DiscoveryAdvert(
    nodeName: options.name, siteID: options.site, gossipPort: options.gossipPort,
    httpPort: options.httpPort, addresses: options.addresses)
let (stops, stopper) = AsyncStream.makeStream(of: Stop.self)
let seen = Mutex<Set<String>>([])
let expect = options.expect
let encoder = JSONEncoder()
encoder.outputFormatting = [.sortedKeys]

let discovery = MDNSDiscovery(advert: advert, logger: logger)
let discovering = Task {
    await discovery.run { peer in
        if let line = try? encoder.encode(peer) { FileHandle.standardOutput.write(line + Data("\n".utf8)) }
        let count = seen.withLock { names in
            names.insert(peer.nodeName)
            return names.count
        }
        if let expect, count >= expect { stopper.yield(.expected) }
    }
}

signal(SIGINT, SIG_IGN)
signal(SIGTERM, SIG_IGN)
let signalQueue = DispatchQueue(label: "otamesh-mdns-probe.signals")
let signalSources = [SIGINT, SIGTERM].map { number in
    let source = DispatchSource.makeSignalSource(signal: number, queue: signalQueue)
    source.setEventHandler { stopper.yield(.signal) }
    source.resume()
    return source
}

let seconds = options.seconds
let reason: Stop? = await withTaskGroup(of: Stop?.self) { group in
    group.addTask {
        try? await Task.sleep(for: .seconds(seconds))
        return nil
    }
    group.addTask {
        for await stop in stops { return stop }
        return nil
    }
    let first = await group.next() ?? nil
    group.cancelAll()
    return first
}
discovering.cancel()
await discovering.value
signalSources.forEach { $0.cancel() }

let found = seen.withLock { $0.count }
logger.info("probe done: \(found) peer(s) seen")
exit(reason == nil && expect.map { found < $0 } == true ? 2 : 0)
