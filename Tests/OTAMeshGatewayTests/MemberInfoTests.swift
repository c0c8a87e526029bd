import Foundation
import Testing

@testable import OTAMeshGateway

/// What a gateway says about itself in its SWIM member metadata.
@Suite("member info")
struct MemberInfoTests {
    @Test("traffic rides in the member metadata, compact, within SWIM's 1,200 bytes; metadata from before it still reads")
    func traffic() throws {
        let keys = (0..<3).map { String(repeating: String($0), count: 8) }
        let info = MemberInfo(
            httpPort: 8070, software: "0.5.0", metadataVersion: 42, keys: keys,
            traffic: .init(servedToDevices: .max, fromPeers: 123_456_789_012, fromUpstream: 0))
        let bytes = info.encoded()
        #expect(bytes.count < 1200, "\(bytes.count) bytes")
        #expect(String(decoding: bytes, as: UTF8.self).contains(#""tr":{"d":9223372036854775807,"p":123456789012,"u":0}"#))
        #expect(MemberInfo.decode(bytes) == info)
        let before = Array(#"{"hp":8070,"k":["aa"],"sw":"0.4.0","tuf":3}"#.utf8)
        #expect(MemberInfo.decode(before)?.traffic == nil && MemberInfo.decode(before)?.metadataVersion == 3)
        #expect(TrafficTotals().current == .init(servedToDevices: 0, fromPeers: 0, fromUpstream: 0))
    }
}
