import Foundation

/// A gateway's `GET /api/v1/members` answer. The one place its JSON is decoded.
public struct MembersReport: Sendable, Equatable, Decodable {
    public struct Member: Sendable, Equatable, Decodable {
        public var name: String
        /// `alive`, `suspect` or `failed`.
        public var status: String
        public var address: String?
        public var http: String?
        public var images: [String]?
    }

    public var node: String
    public var members: [Member]
    /// SHA-256 hex digests the gateway holds.
    public var images: [String]

    public static func decode(_ data: Data) -> MembersReport? {
        try? JSONDecoder().decode(MembersReport.self, from: data)
    }

    public func member(_ name: String) -> Member? { members.first { $0.name == name } }
}

/// Scenario conditions judged from the gateways' reports. Pure: each function returns what is
/// still missing (empty = the condition holds), so a wait can print its progress.
public enum Convergence {
    /// Every running gateway answered, sees every other running gateway alive, holds every
    /// expected image, and all hold the same set.
    public static func converged(reports: [String: MembersReport?], running: [String], expectedImages: Set<String>) -> [String] {
        var missing: [String] = []
        var imageSets: [String: Set<String>] = [:]
        for name in running {
            guard let report = reports[name] ?? nil else {
                missing.append("\(name): no members answer")
                continue
            }
            let notAlive = running.filter { $0 != name && report.member($0)?.status != "alive" }
                .map { "\($0) \(report.member($0)?.status ?? "unknown")" }
            if !notAlive.isEmpty { missing.append("\(name) sees \(notAlive.joined(separator: ", "))") }
            let held = Set(report.images)
            let lacking = expectedImages.subtracting(held)
            if !lacking.isEmpty { missing.append("\(name) lacks \(lacking.count)/\(expectedImages.count) images") }
            imageSets[name] = held
        }
        if missing.isEmpty, Set(imageSets.values).count > 1 {
            missing.append("image sets differ: " + imageSets.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count)" }.joined(separator: ", "))
        }
        return missing
    }

    /// The observers (`by`, else every running gateway other than `target`) report it `failed`
    /// or `left` (a gateway stopped with SIGTERM says goodbye), or no longer list it.
    public static func failed(_ target: String, by: [String] = [], reports: [String: MembersReport?], running: [String]) -> [String] {
        observers(of: target, by: by, running: running).compactMap { name in
            guard let report = reports[name] ?? nil else { return "\(name): no members answer" }
            guard let member = report.member(target), !["failed", "left"].contains(member.status) else { return nil }
            return "\(name) sees \(target) \(member.status)"
        }
    }

    /// The observers (`by`, else every running gateway other than `target`) report it `alive`.
    public static func alive(_ target: String, by: [String] = [], reports: [String: MembersReport?], running: [String]) -> [String] {
        observers(of: target, by: by, running: running).compactMap { name in
            guard let report = reports[name] ?? nil else { return "\(name): no members answer" }
            let status = report.member(target)?.status ?? "unknown"
            return status == "alive" ? nil : "\(name) sees \(target) \(status)"
        }
    }

    /// Named observers must be running (a stopped one can never confirm anything).
    static func observers(of target: String, by: [String], running: [String]) -> [String] {
        by.isEmpty ? running.filter { $0 != target } : by.filter { $0 != target }
    }
}
