import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshTransfer

@Suite("byte ranges")
struct ByteRangeTests {
    @Test("single, open, suffix and multiple ranges")
    func parse() {
        #expect(RangeRequest.parse("bytes=0-99", length: 1_000) == .partial([ByteRange(first: 0, last: 99)]))
        #expect(RangeRequest.parse("bytes=900-", length: 1_000) == .partial([ByteRange(first: 900, last: 999)]))
        #expect(RangeRequest.parse("bytes=-100", length: 1_000) == .partial([ByteRange(first: 900, last: 999)]))
        #expect(RangeRequest.parse("bytes=-5000", length: 1_000) == .partial([ByteRange(first: 0, last: 999)]))
        #expect(RangeRequest.parse("bytes=990-2000", length: 1_000) == .partial([ByteRange(first: 990, last: 999)]))
        #expect(RangeRequest.parse("bytes=0-0, 5-9", length: 1_000) == .partial([ByteRange(first: 0, last: 0), ByteRange(first: 5, last: 9)]))
        #expect(RangeRequest.parse(nil, length: 1_000) == .full)
        #expect(ByteRange(first: 10, last: 19).contentRange(total: 100) == "bytes 10-19/100")
    }

    @Test("overlapping ranges are coalesced: never more than the representation once (bytes=0-,0-,… sent 16× before)")
    func overlapping() {
        let sixteen = "bytes=" + Array(repeating: "0-", count: 16).joined(separator: ",")
        #expect(RangeRequest.parse(sixteen, length: 1_000) == .partial([ByteRange(first: 0, last: 999)]))
        #expect(RangeRequest.parse("bytes=500-599,0-99,50-149", length: 1_000) == .partial([ByteRange(first: 0, last: 149), ByteRange(first: 500, last: 599)]))
        #expect(RangeRequest.parse("bytes=-100,900-", length: 1_000) == .partial([ByteRange(first: 900, last: 999)]))
        // Disjoint ranges keep the order they were asked in.
        #expect(RangeRequest.parse("bytes=500-599,0-99", length: 1_000) == .partial([ByteRange(first: 500, last: 599), ByteRange(first: 0, last: 99)]))
        for _ in 0..<200 {
            let specs = (0..<Int.random(in: 1...16)).map { _ in "\(Int.random(in: 0..<1_000))-\(Int.random(in: 0..<1_200))" }
            guard case .partial(let ranges) = RangeRequest.parse("bytes=" + specs.joined(separator: ","), length: 1_000) else { continue }
            #expect(ranges.reduce(0) { $0 + $1.count } <= 1_000, "\(specs)")
        }
    }

    @Test(
        "malformed headers are ignored (full response), unsatisfiable ones are 416",
        arguments: [
            ("bytes=", RangeRequest.full), ("bytes=5-2", .full), ("bytes=99999999999999999999-", .full), ("bytes=a-b", .full),
            ("items=0-5", .full), ("bytes=0-5,", .full), ("bytes=--5", .full), ("bytes=1000-", .unsatisfiable),
            ("bytes=-0", .unsatisfiable), ("bytes=2000-3000", .unsatisfiable),
        ])
    func malformed(header: String, expected: RangeRequest) {
        #expect(RangeRequest.parse(header, length: 1_000) == expected)
    }

    @Test("1,000 ranges, huge and random headers never crash")
    func hostile() {
        let many = "bytes=" + (0..<1_000).map { "\($0)-\($0)" }.joined(separator: ",")
        #expect(RangeRequest.parse(many, length: 10_000) == .full)
        var rng = SplitMix64(seed: 1)
        let alphabet = Array("bytes=0123456789-, */\t")
        for _ in 0..<5_000 {
            let header = String((0..<Int(rng.next() % 40)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            let length = Int64(rng.next() % 2_000)
            if case .partial(let ranges) = RangeRequest.parse(header, length: length) {
                for range in ranges { #expect(range.first >= 0 && range.first <= range.last && range.last < length, "\(header)") }
            }
        }
    }

    @Test("resume responses: append only at the right offset and total")
    func resume() {
        #expect(ResumeCheck.check(status: 206, contentRange: "bytes 500-999/1000", offset: 500, total: 1_000) == .append)
        #expect(ResumeCheck.check(status: 200, contentRange: nil, offset: 500, total: 1_000) == .restart)
        #expect(
            ResumeCheck.check(status: 206, contentRange: "bytes 400-999/1000", offset: 500, total: 1_000)
                == .fail("server sent bytes 400-999/1000, requested bytes=500-"))
        #expect(
            ResumeCheck.check(status: 206, contentRange: "bytes 500-999/2000", offset: 500, total: 1_000)
                == .fail("Content-Range total 2000 differs from the signed length 1000"))
        #expect(
            ResumeCheck.check(status: 206, contentRange: "bytes 500-999/*", offset: 500, total: 1_000)
                == .fail("Content-Range total * differs from the signed length 1000"))
        #expect(ResumeCheck.check(status: 206, contentRange: nil, offset: 500, total: 1_000) == .fail("206 without a valid Content-Range"))
        #expect(ResumeCheck.check(status: 416, contentRange: "bytes */1000", offset: 1_000, total: 1_000) == .append)
        #expect(
            ResumeCheck.check(status: 416, contentRange: "bytes */1200", offset: 1_000, total: 1_000)
                == .fail("416 Range Not Satisfiable for bytes=1000- of 1000"))
        #expect(ResumeCheck.parseContentRange("bytes 5-2/10") == nil)
        #expect(ResumeCheck.parseContentRange("bytes 1-2/x") == nil)
    }
}
