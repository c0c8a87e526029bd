import Foundation
import OTAMeshTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The probe binary against no daemon at all: runs anywhere, as any user.
@Suite("mDNS probe without a daemon")
struct ProbeTests {
    @Test(
        "without a reachable daemon the probe warns once, keeps retrying, and stops cleanly",
        .enabled(if: FileManager.default.isExecutableFile(atPath: AvahiLab.probe), "otamesh-mdns-probe is not built (swift build builds it)"))
    func noDaemon() throws {
        // A bus address that cannot exist: nothing is contacted, nothing is sent.
        let child = try Child(
            AvahiLab.probe,
            [
                "--name", "gw-a", "--site", "lab", "--gossip-port", "7946", "--http-port", "8080",
                "--address", "10.250.0.11", "--seconds", "60", "--debug",
            ],
            environment: ["DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/otamesh-no-bus", "AVAHI_COMPAT_NOWARN": "1"])
        let retried = waitUntil(timeout: 20) { child.stderr.text.contains("next try in 4 s") }
        child.signal(SIGTERM)
        let status = child.wait(timeout: 10)
        let log = child.stderr.text
        #expect(retried, "\(log)")
        #expect(status == 0, "\(log)")
        #expect(AvahiLab.count("mDNS unavailable", in: log) == 1, "\(log)")
        #expect(log.contains("static join addresses still work"))
        #expect(child.stdout.text.isEmpty)
    }
}
