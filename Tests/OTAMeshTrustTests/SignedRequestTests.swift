import Crypto
import Foundation
import Testing

@testable import OTAMeshTrust

@Suite("signed admin API requests")
struct SignedRequestTests {
    static let now: Int64 = 1_796_000_000

    static func trust(_ admins: [TUFSigner]) throws -> SiteTrust {
        try SiteTrust(site: "building-7", threshold: 1, admins: admins.map(\.publicKey))
    }

    @Test("a request signed by any admin key of the site verifies, whatever the key type, through its header")
    func roundTrip() throws {
        let admins: [TUFSigner] = [.ed25519(.init()), .ecdsaP256(.init()), try KeyFile.generate(.rsa)]
        let trust = try Self.trust(admins)
        for admin in admins {
            let signed = try SignedRequest.sign(
                with: admin, method: "post", target: "/api/v1/records/x", body: Array("hello".utf8),
                time: Self.now, nonce: "abcdef0123456789")
            let parsed = try SignedRequest.parse(signed.header)
            #expect(parsed == signed)
            #expect(parsed.bodySHA256 == hexStringForTest(SHA256.hash(data: Array("hello".utf8))))
            let key = try SignedRequest.verify(parsed, method: "POST", target: "/api/v1/records/x", trust: trust, now: Self.now + 299)
            #expect(key == admin.publicKey)
        }
        #expect(
            try SignedRequest.sign(with: admins[0], method: "GET", target: "/", body: [], time: 1, nonce: "nonce-123").bodySHA256
                == SignedRequest.emptyBodySHA256)
    }

    @Test("another key, another time, another method or path, or an edited signature: refused with the reason")
    func refusals() throws {
        let admin = TUFSigner.ed25519(.init())
        let rogue = TUFSigner.ed25519(.init())
        let trust = try Self.trust([admin])
        let signed = try SignedRequest.sign(with: admin, method: "GET", target: "/api/v1/members", body: [], time: Self.now, nonce: "n0nce-0001")
        #expect(throws: SignedRequestError.stale(time: Self.now, now: Self.now + 301)) {
            try SignedRequest.verify(signed, method: "GET", target: "/api/v1/members", trust: trust, now: Self.now + 301)
        }
        #expect(throws: SignedRequestError.stale(time: Self.now, now: Self.now - 301)) {
            try SignedRequest.verify(signed, method: "GET", target: "/api/v1/members", trust: trust, now: Self.now - 301)
        }
        #expect(throws: SignedRequestError.badSignature(keyID: signed.keyID)) {
            try SignedRequest.verify(signed, method: "GET", target: "/api/v1/cache", trust: trust, now: Self.now)
        }
        #expect(throws: SignedRequestError.badSignature(keyID: signed.keyID)) {
            try SignedRequest.verify(signed, method: "POST", target: "/api/v1/members", trust: trust, now: Self.now)
        }
        var edited = signed
        edited.bodySHA256 = String(repeating: "0", count: 64)
        #expect(throws: SignedRequestError.badSignature(keyID: signed.keyID)) {
            try SignedRequest.verify(edited, method: "GET", target: "/api/v1/members", trust: trust, now: Self.now)
        }
        let foreign = try SignedRequest.sign(with: rogue, method: "GET", target: "/api/v1/members", body: [], time: Self.now, nonce: "n0nce-0001")
        #expect(throws: SignedRequestError.unknownKey(keyID: foreign.keyID, site: "building-7")) {
            try SignedRequest.verify(foreign, method: "GET", target: "/api/v1/members", trust: trust, now: Self.now)
        }
        // A rogue signature under an admin's key id.
        var borrowed = foreign
        borrowed.keyID = signed.keyID
        #expect(throws: SignedRequestError.badSignature(keyID: signed.keyID)) {
            try SignedRequest.verify(borrowed, method: "GET", target: "/api/v1/members", trust: trust, now: Self.now)
        }
        #expect("\(SignedRequestError.stale(time: Self.now, now: Self.now + 400))".contains("400 s ago"))
    }

    @Test("malformed headers are refused with what is wrong; no input crashes the parser")
    func malformed() throws {
        let good = try SignedRequest.sign(with: .ed25519(.init()), method: "GET", target: "/", body: [], time: Self.now, nonce: "abcdefgh").header
        #expect(SignedRequest.isSigned(good) && SignedRequest.isSigned("  otamesh-sig keyid=1"))
        #expect(!SignedRequest.isSigned("Bearer abc") && !SignedRequest.isSigned("OTAMesh-Sig"))
        let cases: [(String, String)] = [
            ("OTAMesh-Sig keyid=00", "keyid= needs 32 bytes"),
            (good.replacingOccurrences(of: "time=", with: "time=-"), "time= needs Unix seconds"),
            (good + ", time=1", "time given twice"),
            (good + ", junk", "each field is NAME=VALUE"),
            (good.replacingOccurrences(of: "nonce=abcdefgh", with: "nonce=a b c d e"), "nonce= needs"),
            (good.replacingOccurrences(of: "nonce=abcdefgh", with: "nonce=abc"), "nonce= needs"),
            (good.replacingOccurrences(of: "sig=", with: "sig=zz"), "sig= needs"),
            ("OTAMesh-Sig " + String(repeating: "a", count: 5000), "longer than 4096"),
        ]
        for (header, reason) in cases {
            do {
                _ = try SignedRequest.parse(header)
                Issue.record("accepted: \(header)")
            } catch {
                #expect("\(error)".contains(reason), "\(header): \(error)")
            }
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("OTAMesh-Sig keyid=time=nonce=body=sig=,0123456789abcdef \t=\u{0}é")
        for _ in 0..<2_000 {
            let text = String((0..<Int.random(in: 0...200, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            _ = try? SignedRequest.parse(text)
            _ = try? SignedRequest.parse("OTAMesh-Sig " + text)
        }
    }
}

private func hexStringForTest(_ digest: some Sequence<UInt8>) -> String {
    digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}
