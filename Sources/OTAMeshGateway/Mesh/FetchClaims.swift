import NIOConcurrencyHelpers

/// The images being fetched right now, by SHA-256 hex: upstream sync and peer sync share one, so
/// one image is never streamed into the store twice at once (both would write its partial).
public final class FetchClaims: Sendable {
    private let busy = NIOLockedValueBox<Set<String>>([])

    public init() {}

    /// Claims `image`; false while someone else fetches it.
    public func claim(_ image: String) -> Bool {
        busy.withLockedValue { $0.insert(image).inserted }
    }

    public func release(_ image: String) {
        _ = busy.withLockedValue { $0.remove(image) }
    }
}
