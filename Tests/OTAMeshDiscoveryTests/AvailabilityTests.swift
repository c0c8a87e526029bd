import Testing

@testable import OTAMeshDiscovery

@Suite("mDNS availability and retry")
struct AvailabilityTests {
    @Test("retries back off 1, 2, 4 … s up to 30 s, and start over after a success")
    func backoff() {
        var backoff = DiscoveryBackoff()
        #expect((0..<7).map { _ in backoff.next() } == [1, 2, 4, 8, 16, 30, 30].map { .seconds($0) })
        backoff.reset()
        #expect(backoff.next() == .seconds(1))
    }

    @Test("one warning per outage, debug lines while it lasts, info when mDNS works again")
    func oneWarningPerOutage() {
        var availability = MDNSAvailability()
        #expect(availability.succeeded(advertising: "gw-a") == .init(level: .info, message: "mDNS: advertising \"gw-a\" and browsing _otamesh._tcp"))
        let first = availability.failed("browse failed: kDNSServiceErr_Unknown", retryIn: .seconds(1))
        #expect(first.level == .warning)
        #expect(
            first.message == "mDNS unavailable: browse failed: kDNSServiceErr_Unknown; retrying every 1 s doubling to 30 s, static join addresses still work")
        #expect(availability.failed("DNSServiceRegister: kDNSServiceErr_Unknown", retryIn: .seconds(2)).level == .debug)
        #expect(availability.failed("DNSServiceRegister: kDNSServiceErr_Unknown", retryIn: .seconds(4)).level == .debug)
        #expect(availability.succeeded(advertising: nil) == .init(level: .info, message: "mDNS available again: browsing _otamesh._tcp"))
        #expect(availability.failed("gone again", retryIn: .seconds(1)).level == .warning)
    }
}
