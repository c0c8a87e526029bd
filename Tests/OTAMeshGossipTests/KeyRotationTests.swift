import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

@Suite("site key rotation")
struct KeyRotationTests {
    @Test("three phases, each only once every member reports the last; rings seal and open across the change")
    func phases() throws {
        let old = SiteKeyring.generateKey()
        var rings = (0..<3).map { _ in try! SiteKeyring(primary: old) }
        var rotation = KeyRotation(id: 1, key: SiteKeyring.generateKey(), retire: [SiteKeyring.fingerprint(old)])
        func reports() -> [[String]] { rings.map { $0.keys.map(SiteKeyring.fingerprint) } }

        // Install reached only two of three: no advance.
        rings[0] = rotation.applied(to: rings[0])
        rings[1] = rotation.applied(to: rings[1])
        #expect(rotation.advanced(members: reports()) == nil)
        // A node that switched already still talks to one that has not.
        #expect(try rings[2].open(rings[0].seal([1, 2, 3])).get() == [1, 2, 3])
        rings[2] = rotation.applied(to: rings[2])
        rotation = try #require(rotation.advanced(members: reports()))
        #expect(rotation.phase == .use)

        rings[0] = rotation.applied(to: rings[0])
        #expect(rings[0].primary == rotation.key)
        // Sealed with the new key, opened by a ring that holds it but still seals with the old.
        #expect(try rings[1].open(rings[0].seal([4])).get() == [4])
        #expect(try rings[0].open(rings[1].seal([5])).get() == [5])
        #expect(rotation.advanced(members: reports()) == nil)
        rings[1] = rotation.applied(to: rings[1])
        rings[2] = rotation.applied(to: rings[2])
        rotation = try #require(rotation.advanced(members: reports()))
        #expect(rotation.phase == .retire)
        for i in 0..<3 { rings[i] = rotation.applied(to: rings[i]) }
        #expect(rings.allSatisfy { $0.keys == [rotation.key] })
        #expect(rotation.isComplete(members: reports()) && rotation.advanced(members: reports()) == nil)
        // The old key opens nothing any more.
        let outsider = try SiteKeyring(primary: old)
        #expect(rings[0].open(outsider.seal([6])) == .failure(.unauthenticated))
    }

    @Test("the record round-trips, and decoding any bytes is total")
    func codec() {
        let rotation = KeyRotation(id: 1_700_000_000_123, key: SiteKeyring.generateKey(), phase: .use, retire: ["0a1b2c3d", "deadbeef"])
        #expect(KeyRotation.decode(rotation.encoded()) == rotation)
        var random = SplitMix64(seed: 11)
        let valid = rotation.encoded()
        for _ in 0..<20_000 {
            var bytes = valid
            switch random.next() % 3 {
            case 0: bytes = (0..<Int(random.next() % 80)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
            default: bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            _ = KeyRotation.decode(bytes)
        }
    }
}
