import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

@Suite("gossip wire codec")
struct WireCodecTests {
    static let gw1 = NodeAddress(name: "gw-1", ip: [10, 0, 0, 1], port: 7946)
    static let gw2 = NodeAddress(name: "gw-2", ip: [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [2], port: 7946)

    static let every: [WireMessage] = [
        .ping(sequence: 1, target: gw2, source: gw1),
        .pingRequest(sequence: 2, target: gw2, requester: gw1),
        .ack(sequence: 1, from: gw2),
        .nack(sequence: 2, from: gw1),
        .alive(node: gw1, incarnation: 7, metadata: Array("images=3".utf8)),
        .suspect(node: "gw-2", incarnation: 3, from: "gw-1"),
        .dead(node: "gw-2", incarnation: 4, from: "gw-1"),
        .record(key: "rollout/r1", owner: "gw-1", version: UInt64.max, value: [0, 1, 2]),
        .digest(owner: "gw-2", version: 17),
        .covered(owner: "gw-3", version: 0),
    ]

    @Test("every message type round-trips, also as one packet")
    func roundTrip() throws {
        for message in Self.every {
            #expect(try WireCodec.decode(try WireCodec.encode([message])) == [message])
        }
        #expect(try WireCodec.decode(try WireCodec.encode(Self.every)) == Self.every)
        #expect(try WireCodec.decode(try WireCodec.encode([])) == [])
        #expect(Self.gw1.description == "gw-1@10.0.0.1:7946" && Self.gw2.description == "gw-2@[fd00:0:0:0:0:0:0:2]:7946")
    }

    @Test("size(of:) is the encoded size of every message, and 0 for one encode rejects")
    func size() {
        let long = String(repeating: "n", count: 65)
        let v4 = NodeAddress(name: "é-node", ip: [10, 0, 0, 9], port: 1)
        var messages =
            Self.every + [
                .alive(node: v4, incarnation: 0, metadata: []),
                .alive(node: v4, incarnation: 0, metadata: [UInt8](repeating: 1, count: 1_200)),
                .alive(node: v4, incarnation: 0, metadata: [UInt8](repeating: 1, count: 1_201)),
                .record(key: "", owner: "o", version: 1, value: []),
                .record(key: String(repeating: "k", count: 64), owner: "o", version: 1, value: [UInt8](repeating: 0, count: 1_201)),
                .suspect(node: long, incarnation: 1, from: "a"),
                .dead(node: "a", incarnation: 1, from: ""),
                .digest(owner: long, version: 1),
                .ping(sequence: 1, target: NodeAddress(name: "x", ip: [1, 2, 3], port: 1), source: v4),
                .nack(sequence: 1, from: NodeAddress(name: long, ip: [1, 2, 3, 4], port: 1)),
            ]
        var random = SplitMix64(seed: 8)
        for _ in 0..<500 {
            let name = String(repeating: "ü", count: Int(random.next() % 40))
            let value = [UInt8](repeating: 7, count: Int(random.next() % 1_300))
            messages.append(.record(key: name, owner: "gw", version: random.next(), value: value))
            messages.append(
                .alive(
                    node: NodeAddress(name: name, ip: [UInt8](repeating: 1, count: Int(random.next() % 20)), port: 9),
                    incarnation: 1, metadata: value))
        }
        for message in messages {
            let encoded = try? WireCodec.encode([message])
            #expect(WireCodec.size(of: message) == (encoded.map { $0.count - 1 } ?? 0), "\(message)")
        }
    }

    @Test("unknown message types are skipped by their length (newer nodes may add types)")
    func forwardCompatible() throws {
        var packet = try WireCodec.encode([Self.every[2], Self.every[5]])
        packet[0] = 3
        packet += [0xEE, 0x00, 0x03, 1, 2, 3]
        #expect(try WireCodec.decode(packet) == [Self.every[2], Self.every[5]])
    }

    @Test("limits hold on both sides")
    func limits() {
        #expect(throws: WireError.self) { try WireCodec.encode(Array(repeating: Self.every[2], count: 65)) }
        #expect(throws: WireError.self) { try WireCodec.encode([.suspect(node: String(repeating: "n", count: 65), incarnation: 1, from: "a")]) }
        #expect(throws: WireError.self) { try WireCodec.encode([.record(key: "k", owner: "o", version: 1, value: [UInt8](repeating: 0, count: 1_201))]) }
        #expect(throws: WireError.self) { try WireCodec.encode([.ack(sequence: 1, from: NodeAddress(name: "x", ip: [1, 2, 3], port: 1))]) }
        #expect(throws: WireError.tooMany(what: "messages", count: 200, limit: 64)) { try WireCodec.decode([200]) }
    }

    @Test("decoding is total: every truncation and 50,000 random or mutated payloads give messages or an error")
    func total() throws {
        let packet = try WireCodec.encode(Self.every)
        for length in 0..<packet.count {
            #expect(throws: WireError.self) { try WireCodec.decode(Array(packet.prefix(length))) }
        }
        var random = SplitMix64(seed: 5)
        for round in 0..<50_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = packet
                for _ in 0..<(1 + Int(random.next() % 4)) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            _ = try? WireCodec.decode(bytes)
        }
    }
}
