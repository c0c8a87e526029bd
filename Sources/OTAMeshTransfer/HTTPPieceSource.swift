import AsyncHTTPClient
import NIOCore
import OTAMeshTrust

/// Pieces of one blob from peers' blob routes: `GET {peer}/v1/blobs/sha256/{hex}` with
/// `Range: bytes=A-B`, answered 206 with exactly the piece (or 200 when the piece is the whole
/// blob); and the blob's piece list from `GET {peer}/v1/pieces/sha256/{hex}?size=S`.
public struct HTTPPieceSource: PieceSource {
    public let client: HTTPClient
    public let blob: String
    public let length: Int64
    /// Peer name → its `http://HOST:PORT`.
    public let peers: [String: String]
    public var timeout: TimeAmount = .seconds(60)

    public struct Refused: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public init(client: HTTPClient, blob: String, length: Int64, peers: [String: String]) {
        (self.client, self.blob, self.length, self.peers) = (client, blob, length, peers)
    }

    public func read(peer: String, offset: Int64, length: Int64) async throws -> [UInt8] {
        guard let base = peers[peer] else { throw Refused(description: "\(peer): no address") }
        var request = HTTPClientRequest(url: "\(base)/v1/blobs/sha256/\(blob)")
        request.headers.add(name: "Range", value: "bytes=\(offset)-\(offset + length - 1)")
        let response = try await client.execute(request, timeout: timeout)
        let whole = offset == 0 && length == self.length
        guard response.status == .partialContent || (response.status == .ok && whole) else {
            throw Refused(description: "\(peer): bytes \(offset)-\(offset + length - 1) answered \(response.status.code)")
        }
        let body = try await response.body.collect(upTo: Int(length))
        guard body.readableBytes == Int(length) else {
            throw Refused(description: "\(peer): \(body.readableBytes) bytes for a piece of \(length)")
        }
        return Array(buffer: body)
    }

    /// The blob's piece list from `peer`, checked against the signed `pieces` field.
    public func pieceList(from peer: String, pieces: TargetPieces) async throws -> PieceManifest {
        guard let base = peers[peer] else { throw Refused(description: "\(peer): no address") }
        let request = HTTPClientRequest(url: "\(base)/v1/pieces/sha256/\(blob)?size=\(pieces.layout.pieceSize)")
        let response = try await client.execute(request, timeout: timeout)
        guard response.status == .ok else { throw Refused(description: "\(peer): piece list answered \(response.status.code)") }
        let body = try await response.body.collect(upTo: pieces.layout.count * 32)
        return try PieceManifest(list: Array(buffer: body), layout: pieces.layout, root: pieces.root)
    }
}
