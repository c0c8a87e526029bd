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

    @Test(
        "one step on a gateway: any member applies the newest rotation; only the one that started it writes the next phase, once every live member reports it")
    func step() throws {
        let old = SiteKeyring.generateKey()
        let ring = try SiteKeyring(primary: old)
        let rotation = KeyRotation.start(now: 100, key: SiteKeyring.generateKey(), keyring: ring, latest: nil)
        #expect(rotation.id == 100 && rotation.phase == .install && rotation.retire == [SiteKeyring.fingerprint(old)])
        #expect(KeyRotation.start(now: 50, key: SiteKeyring.generateKey(), keyring: ring, latest: rotation).id == 101, "numbered after the newest")
        #expect(KeyRotation.step(latest: nil, keyring: ring, me: "gw1", others: []) == KeyRotation.Step())

        let lagging = [[SiteKeyring.fingerprint(old)]]
        let follower = KeyRotation.step(latest: (rotation, "gw1"), keyring: ring, me: "gw2", others: [])
        #expect(follower.keyring?.keys.contains(rotation.key) == true && follower.write == nil, "a follower installs, never writes")
        let waiting = KeyRotation.step(latest: (rotation, "gw1"), keyring: ring, me: "gw1", others: lagging)
        #expect(waiting.keyring != nil && waiting.write == nil, "the initiator waits for a member without the key")
        let installed = try #require(follower.keyring)
        let everyone = [installed.keys.map(SiteKeyring.fingerprint)]
        let advancing = KeyRotation.step(latest: (rotation, "gw1"), keyring: installed, me: "gw1", others: everyone)
        #expect(advancing.keyring == nil, "nothing left to change here")
        #expect(advancing.write?.phase == .use)
    }

    @Test("the rotation channel: the newest rotation and who started it; other names and bytes are not rotations")
    func channel() throws {
        let first = KeyRotation(id: 1, key: SiteKeyring.generateKey(), retire: [])
        let second = KeyRotation(id: 2, key: SiteKeyring.generateKey(), retire: [])
        let records = [
            ReplicatedRecords.Record(key: KeyRotation.recordKey, owner: "gw2", version: 3, value: second.encoded()),
            ReplicatedRecords.Record(key: KeyRotation.recordKey, owner: "gw1", version: 9, value: first.encoded()),
            ReplicatedRecords.Record(key: KeyRotation.recordKey, owner: "gw3", version: 1, value: [1, 2, 3]),
            ReplicatedRecords.Record(key: KeyRotation.recordKey + "x", owner: "gw4", version: 1, value: second.encoded()),
        ]
        let latest = try #require(KeyRotationChannel.view(of: records))
        #expect(latest.rotation == second && latest.owner == "gw2")
        #expect(KeyRotationChannel.records(in: records).map(\.owner) == ["gw2", "gw1"])
        #expect(KeyRotationChannel.durable)
    }

    @Test("channels may not share keys; a record is journalled as its channel says, an unclaimed key is kept")
    func channels() throws {
        enum A: CountingChannel {
            static let prefix = "a/"
            static let durable = false
        }
        enum AB: CountingChannel {
            static let prefix = "a/b"
            static let durable = true
        }
        #expect(throws: GossipChannels.Overlap.self) { try GossipChannels([A.self, AB.self]) }
        let channels = try GossipChannels([A.self, KeyRotationChannel.self])
        #expect(!channels.isDurable("a/x") && channels.isDurable(KeyRotation.recordKey) && channels.isDurable("other/x"))
        #expect(
            A.view(of: [ReplicatedRecords.Record(key: "a/1", owner: "gw1", version: 1, value: []), .init(key: "b/1", owner: "gw1", version: 1, value: [])]) == 1
        )
    }
}

/// A test channel of raw bytes whose view counts its records.
protocol CountingChannel: GossipChannel where Value == [UInt8], View == Int {}

extension CountingChannel {
    static func encode(_ value: [UInt8]) -> [UInt8] { value }
    static func decode(name: String, _ bytes: [UInt8]) -> [UInt8]? { bytes }
    static func merge(_ records: [ChannelRecord<[UInt8]>]) -> Int { records.count }
}
