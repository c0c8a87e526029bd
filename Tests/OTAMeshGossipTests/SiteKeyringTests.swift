import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

@Suite("site keyring")
struct SiteKeyringTests {
    static let a = [UInt8](repeating: 0xA1, count: 32)
    static let b = [UInt8](repeating: 0xB2, count: 32)

    @Test("seal under the primary, open with any key; a fresh nonce each time")
    func roundTrip() throws {
        let ring = try SiteKeyring(primary: Self.a)
        let payload = Array("alive node-1 incarnation 7".utf8)
        let one = ring.seal(payload)
        let two = ring.seal(payload)
        #expect(one.count == payload.count + SiteKeyring.overhead && one[0] == 1)
        #expect(one != two, "random nonces")
        #expect(ring.open(one) == .success(payload) && ring.open(two) == .success(payload))
        #expect(ring.open(ring.seal([])) == .success([]))
    }

    @Test("rotation without a partition: install, use, remove")
    func rotation() throws {
        var old = try SiteKeyring(primary: Self.a)
        var new = old
        try new.install(Self.b)
        try new.use(Self.b)  // this node now seals with b, still opens a
        #expect(new.primary == Self.b)
        #expect(old.open(new.seal([1, 2, 3])) == .failure(.unauthenticated), "a node without b cannot read b yet")
        try old.install(Self.b)
        #expect(old.open(new.seal([1, 2, 3])) == .success([1, 2, 3]))
        #expect(new.open(old.seal([4])) == .success([4]))
        #expect(throws: KeyringError.removingPrimary) { try new.remove(Self.b) }
        try new.remove(Self.a)
        #expect(new.open(try SiteKeyring(primary: Self.a).seal([5])) == .failure(.unauthenticated))
        #expect(throws: KeyringError.badKeyLength(31)) { try SiteKeyring(primary: Array(Self.a.prefix(31))) }
    }

    @Test("tampering, another site's key, a rewritten version and short packets are rejected")
    func rejections() throws {
        let ring = try SiteKeyring(primary: Self.a)
        let packet = ring.seal(Array("payload".utf8))
        for index in packet.indices.dropFirst() {
            var tampered = packet
            tampered[index] ^= 0x01
            #expect(ring.open(tampered) == .failure(.unauthenticated), "byte \(index)")
        }
        var version = packet
        version[0] = 2
        #expect(ring.open(version) == .failure(.unknownVersion(2)))
        #expect(try SiteKeyring(primary: Self.b).open(packet) == .failure(.unauthenticated))
        #expect(ring.open(Array(packet.prefix(SiteKeyring.overhead - 1))) == .failure(.tooShort(length: SiteKeyring.overhead - 1)))
    }

    @Test("any bytes are either opened or rejected: 20,000 random packets")
    func total() throws {
        let ring = try SiteKeyring(primary: Self.a)
        var random = SplitMix64(seed: 99)
        for _ in 0..<20_000 {
            let length = Int(random.next() % 200)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if !bytes.isEmpty && random.next() % 2 == 0 { bytes[0] = 1 }
            if case .success = ring.open(bytes) { Issue.record("random bytes authenticated") }
        }
    }
}
