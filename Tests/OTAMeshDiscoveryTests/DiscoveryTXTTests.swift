import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshDiscovery

@Suite("discovery TXT record")
struct DiscoveryTXTTests {
    static let advert = DiscoveryAdvert(
        nodeName: "gw-a", siteID: "lab", gossipPort: 7946, httpPort: 8080,
        addresses: ["10.250.0.11", "FD00:0:0::0001"])

    /// A TXT record from strings, as a peer would send it.
    static func txt(_ items: [String]) -> [UInt8] {
        items.flatMap { item in [UInt8(item.utf8.count)] + Array(item.utf8) }
    }

    static let valid = ["id=gw-b", "v=1", "site=669eb18319d980c8", "gp=7947", "hp=8081", "addr=10.250.0.12"]

    static func peer(_ items: [String], resolvedPort: UInt16 = 7947, hosts: [String] = []) -> Result<DiscoveredPeer, DiscoveryRejection> {
        DiscoveryTXT.peer(instance: "gw-b", txt: txt(items), resolvedPort: resolvedPort, hostAddresses: hosts)
    }

    @Test("the site hash is the first 16 hex digits of SHA-256(\"otamesh-site:\" + siteID)")
    func siteHash() {
        #expect(Self.advert.siteHash == "669eb18319d980c8")
        #expect(DiscoveryAdvert.siteHash(of: "") == "af30a8eb3fcd7c2c")
        #expect(DiscoveryAdvert.siteHash(of: "Lab") != Self.advert.siteHash)
    }

    @Test("encode → peer round-trips every field; addresses come back normalised, the site only as its hash")
    func roundTrip() throws {
        let bytes = DiscoveryTXT.encode(Self.advert)
        #expect(!String(decoding: bytes, as: UTF8.self).contains("lab"))
        #expect(
            DiscoveryTXT.decode(bytes) == [
                "id": "gw-a", "v": "1", "site": "669eb18319d980c8", "gp": "7946", "hp": "8080", "addr": "10.250.0.11,fd00::1",
            ])
        let peer = try DiscoveryTXT.peer(instance: "gw-a", txt: bytes, resolvedPort: 7946, hostAddresses: []).get()
        #expect(
            peer
                == DiscoveredPeer(
                    nodeName: "gw-a", addresses: ["10.250.0.11", "fd00::1"], gossipPort: 7946, httpPort: 8080,
                    protocolVersion: 1, siteHash: "669eb18319d980c8"))
    }

    @Test("encode keeps whole addresses that fit one 255-byte string and drops undialable ones")
    func addressLimit() throws {
        var advert = Self.advert
        advert.addresses = ["127.0.0.1", "not-an-ip", "0.0.0.0"] + (0..<40).map { "2001:db8:ffff:ffff:ffff:ffff:ffff:\(String($0, radix: 16))" }
        let bytes = DiscoveryTXT.encode(advert)
        let addresses = try #require(DiscoveryTXT.decode(bytes)["addr"]).split(separator: ",")
        #expect(addresses.count == 6)
        #expect(addresses.first == "2001:db8:ffff:ffff:ffff:ffff:ffff:0")
        // Every string within its length byte: walking the record lands exactly on the end.
        var offset = 0
        while offset < bytes.count { offset += 1 + Int(bytes[offset]) }
        #expect(offset == bytes.count)
    }

    @Test("decode follows RFC 6763 §6: case-insensitive keys, first one wins, booleans, junk skipped")
    func decodeRules() {
        var bytes = Self.txt(["ID=first", "id=second", "flag", "=nokey", "", "b\u{7F}d=x", "empty=", "a=b=c"])
        bytes += [4, UInt8(ascii: "x"), UInt8(ascii: "="), 0xFF, 0xFE]  // a value that is not UTF-8
        bytes += [9, UInt8(ascii: "t"), UInt8(ascii: "=")]  // a truncated last string
        #expect(DiscoveryTXT.decode(bytes) == ["id": "first", "flag": "", "empty": "", "a": "b=c"])
        #expect(DiscoveryTXT.decode([]) == [:])
        #expect(DiscoveryTXT.decode([0]) == [:])
    }

    @Test("decode and peer are total: every truncation and 50,000 random or mutated records")
    func total() {
        let record = DiscoveryTXT.encode(Self.advert)
        for length in 0...record.count {
            _ = DiscoveryTXT.peer(instance: "x", txt: Array(record.prefix(length)), resolvedPort: 0, hostAddresses: [])
        }
        var random = SplitMix64(seed: 6763)
        var accepted = 0
        for round in 0..<50_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(random.next() % 400)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = record
                for _ in 0..<(1 + Int(random.next() % 4)) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            let pairs = DiscoveryTXT.decode(bytes)
            for key in pairs.keys {
                #expect(!key.isEmpty && !key.contains("=") && key == key.lowercased())
            }
            if case .success(let peer) = DiscoveryTXT.peer(
                instance: "gw", txt: bytes, resolvedPort: UInt16(truncatingIfNeeded: random.next()),
                hostAddresses: [])
            {
                accepted += 1
                #expect(peer.gossipPort != 0 && peer.httpPort != 0 && !peer.addresses.isEmpty && peer.protocolVersion == 1)
            }
        }
        #expect(accepted > 0)  // some mutations leave the record valid
    }

    @Test("each broken advert gives its typed rejection")
    func rejections() {
        func without(_ key: String) -> [String] { Self.valid.filter { !$0.hasPrefix(key + "=") } }
        func with(_ item: String) -> [String] { [item] + Self.valid }  // the first occurrence wins
        let cases: [([String], DiscoveryRejection)] = [
            (without("v"), .missingKey("v")),
            (with("v=2"), .unsupportedVersion(2)),
            (with("v=one"), .invalidValue(key: "v", value: "one")),
            (with("v=-1"), .invalidValue(key: "v", value: "-1")),
            (without("site"), .missingKey("site")),
            (with("site=669EB18319D980C8"), .invalidValue(key: "site", value: "669EB18319D980C8")),
            (with("site=669eb183"), .invalidValue(key: "site", value: "669eb183")),
            (with("id=" + String(repeating: "n", count: 65)), .invalidValue(key: "id", value: String(repeating: "n", count: 65))),
            (with("id=gw\nb"), .invalidValue(key: "id", value: "gw\nb")),
            (with("gp=0"), .invalidValue(key: "gp", value: "0")),
            (with("gp=65536"), .invalidValue(key: "gp", value: "65536")),
            (with("gp=+80"), .invalidValue(key: "gp", value: "+80")),
            (with("gp= 80"), .invalidValue(key: "gp", value: " 80")),
            (without("hp"), .missingKey("hp")),
            (with("hp=http"), .invalidValue(key: "hp", value: "http")),
            (
                with("addr=127.0.0.1,::1,fe80::1,ff02::fb,224.0.0.251,0.0.0.0,gw-b.local,10.0.0.1%lab0"),
                .noUsableAddress(advertised: "127.0.0.1,::1,fe80::1,ff02::fb,224.0.0.251,0.0.0.0,gw-b.local,10.0.0.1%lab0")
            ),
            (without("addr"), .noUsableAddress(advertised: "")),
        ]
        for (items, rejection) in cases {
            #expect(Self.peer(items) == .failure(rejection), "\(items)")
        }
        #expect(Self.peer(without("gp"), resolvedPort: 0) == .failure(.missingKey("gp")))
        #expect(DiscoveryRejection.invalidValue(key: "id", value: "a\u{1B}[31m").description == #"TXT key 'id' has an invalid value "a\u{1B}[31m""#)
    }

    @Test("fallbacks: SRV port for gp, instance name for id, host addresses after addr (deduplicated)")
    func fallbacks() throws {
        let peer = try Self.peer(
            Self.valid.filter { !$0.hasPrefix("gp=") && !$0.hasPrefix("id=") }, resolvedPort: 9000,
            hosts: ["10.250.0.12", "::ffff:10.250.0.99", "fe80::2"]
        ).get()
        #expect(peer.nodeName == "gw-b" && peer.gossipPort == 9000)
        #expect(peer.addresses == ["10.250.0.12", "10.250.0.99"])
        let spaced = try Self.peer(with: "addr= 10.0.0.1 ,garbage, 2001:DB8::1").get()
        #expect(spaced.addresses == ["10.0.0.1", "2001:db8::1"])
    }

    @Test("a node admits only other nodes of its own site")
    func admission() throws {
        let peer = try Self.peer(Self.valid).get()
        #expect(Self.advert.admit(peer) == .success(peer))
        var other = Self.advert
        other.siteID = "elsewhere"
        #expect(other.admit(peer) == .failure(.otherSite(siteHash: "669eb18319d980c8")))
        var twin = Self.advert
        twin.nodeName = "gw-b"
        #expect(twin.admit(peer) == .failure(.ownName))
    }

    @Test("instance names are clipped to 63 bytes on a character boundary; bad adverts are named")
    func advertLimits() {
        var advert = Self.advert
        advert.nodeName = String(repeating: "é", count: 32)  // 64 bytes
        #expect(advert.instanceName == String(repeating: "é", count: 31))
        #expect(advert.problem == nil)
        advert.nodeName = ""
        #expect(advert.problem != nil)
        advert.nodeName = "gw"
        advert.httpPort = 0
        #expect(advert.problem == "HTTP port is 0")
    }
}

extension DiscoveryTXTTests {
    static func peer(with item: String) -> Result<DiscoveredPeer, DiscoveryRejection> { peer([item] + valid) }
}
