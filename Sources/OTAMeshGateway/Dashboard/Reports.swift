import Foundation
import OTAMeshRollout
import OTAMeshTrust

/// Reports an admin of an offline site carries home (`otamesh report`, the dashboard's
/// downloads): as JSON, or as CSV for a spreadsheet. Device-sent text stays data: CSV fields
/// are quoted, and a field a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is
/// prefixed with `'`.
enum CSV {
    static func field(_ text: String?) -> String {
        guard var text, !text.isEmpty else { return "" }
        if let first = text.first, "=+-@\t\r".contains(first) { text = "'" + text }
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func table(_ header: [String], _ rows: [[String?]]) -> String {
        ([header.joined(separator: ",")] + rows.map { $0.map(field).joined(separator: ",") }).joined(separator: "\r\n") + "\r\n"
    }

    /// RFC 3339 UTC, to the second.
    static func time(seconds: Double) -> String { ISOTime.format(Int64(seconds.rounded(.down))) }
    static func time(milliseconds: Int64) -> String { ISOTime.format(milliseconds / 1000) }
}

/// Every device of the site as one gateway sees it: version, where and when it was last seen,
/// and what it was last told (which names the rollout outcome).
public struct FleetReport: Codable, Sendable, Equatable {
    public var site: String?
    public var gateway: String
    public var devices: [DashboardSnapshot.Device]

    init(_ snapshot: DashboardSnapshot) {
        site = snapshot.site?.site
        gateway = snapshot.gateway
        devices = snapshot.devices
    }

    var csv: String {
        CSV.table(
            ["device", "gateway", "family", "hardware", "variant", "version", "last_seen", "last_answer", "tags", "address", "segment"],
            devices.map {
                [
                    $0.id, $0.gateway, $0.family, $0.hardware, $0.variant, $0.version, CSV.time(seconds: $0.lastSeen), $0.lastAnswer, $0.tags, $0.address,
                    $0.segment,
                ]
            })
    }
}

/// One rollout: its plan and mode, each stage's counts, each gateway's, and every device's
/// attempt with its times and why it failed.
public struct RolloutReport: Codable, Sendable, Equatable {
    public var rollout: RolloutStatus

    init(_ status: RolloutStatus) { rollout = status }

    var csv: String {
        var rows: [[String?]] = []
        for (index, stage) in rollout.stages.enumerated() {
            rows.append(
                ["stage", "\(index + 1)", "\(stage.percent)", "\(stage.targeted)", "\(stage.succeeded)", "\(stage.failed)", "\(stage.inFlight)"]
                    + [nil, nil, nil, nil, nil, nil])
        }
        for (gateway, progress) in rollout.gateways.sorted(by: { $0.key < $1.key }) {
            rows.append(
                ["gateway", nil, nil, "\(progress.targeted)", "\(progress.succeeded)", "\(progress.failed)", "\(progress.inFlight)", nil, gateway]
                    + [nil, nil, nil, nil])
        }
        for outcome in rollout.outcomes ?? [] {
            rows.append(
                ["device", nil, nil, nil, nil, nil, nil, outcome.device, outcome.gateway, outcome.phase]
                    + [CSV.time(milliseconds: outcome.started), CSV.time(milliseconds: outcome.updated), outcome.detail])
        }
        return CSV.table(
            ["record", "stage", "percent", "targeted", "succeeded", "failed", "in_flight", "device", "gateway", "phase", "started", "updated", "detail"],
            rows)
    }
}
