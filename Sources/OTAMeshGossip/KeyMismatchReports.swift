/// Which peer addresses were found to use another site key, so that each is reported once
/// (a misjoined gateway retries for ever; its warning must not). Bounded: past `limit`
/// addresses nothing new is reported, so a flood of packets from spoofed sources cannot grow it.
public struct KeyMismatchReports: Sendable, Equatable {
    public let limit: Int
    public private(set) var addresses: Set<String> = []

    public init(limit: Int = 256) {
        self.limit = limit
    }

    /// True the first time `address` is noted: the caller reports it then, and only then.
    public mutating func note(_ address: String) -> Bool {
        guard addresses.count < limit, !addresses.contains(address) else { return false }
        addresses.insert(address)
        return true
    }

    /// Whether `address` was noted.
    public func contains(_ address: String) -> Bool { addresses.contains(address) }

    /// What an operator reads: the gateway at `address` cannot read this one's packets, nor
    /// this one its packets.
    public static func warning(address: String) -> String {
        "a gateway at \(address) uses another site key: copy the site's keyring (DATA/keys/site.keyring of a gateway of the site) to it, or to this gateway"
    }
}
