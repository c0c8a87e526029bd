import GRDB
import OTAMeshFirmware
import OTAMeshStore
import NIOConcurrencyHelpers

/// One device as the gateway knows it.
public struct DeviceRecord: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "device"

    /// Lower-case MAC (`aa:bb:cc:dd:ee:ff`), a path id, or `ip:ADDRESS`.
    public var id: String
    /// `esp8266-httpupdate`, `esp32-httpupdate`, `esp-https-ota`, `esp8266-fota`, `wiphone`, `generic`.
    public var family: String
    public var hardware: String?
    public var version: String?
    public var address: String
    public var firstSeen: Double
    public var lastSeen: Double
    /// The target path an admin (later: a rollout) assigned; nil = stay as is.
    public var assignedTarget: String?
    /// What the gateway last answered: `offered PATH`, `up to date`, `no assignment`, `incompatible: …`.
    public var lastAnswer: String?
    /// Admin-given tags, comma-separated (`floor2,lobby`): rollout selectors match them.
    public var tags: String?
    /// The firmware variant the device reports (e.g. `esp32-eth`), if its family says.
    public var variant: String?

    /// ``tags`` as a list.
    public var tagList: [String] { (tags ?? "").split(separator: ",").map(String.init) }

    public init(id: String, family: String, hardware: String? = nil, version: String? = nil, address: String,
                firstSeen: Double, lastSeen: Double, assignedTarget: String? = nil, lastAnswer: String? = nil,
                tags: String? = nil, variant: String? = nil) {
        self.id = id
        self.family = family
        self.hardware = hardware
        self.version = version
        self.address = address
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.assignedTarget = assignedTarget
        self.lastAnswer = lastAnswer
        self.tags = tags
        self.variant = variant
    }
}

/// What one request told the gateway about a device.
public struct DeviceSighting: Sendable, Equatable {
    public var id: String
    public var family: String
    public var hardware: String?
    public var version: String?
    public var address: String
    public var answer: String
    /// The firmware variant the device reported (projectMM's `firmware`), if any.
    public var variant: String?

    public init(id: String, family: String, hardware: String? = nil, version: String? = nil, address: String, answer: String, variant: String? = nil) {
        self.id = id
        self.family = family
        self.hardware = hardware
        self.version = version
        self.address = address
        self.answer = answer
        self.variant = variant
    }
}

/// Errors of the device registry.
public struct RegistryError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): device registry: \(reason)" }
}

/// The device registry (`devices.sqlite` in the data directory, WAL). The agent keeps every
/// device in memory and writes sightings in batches (``flush()``), so a thousand devices polling
/// each second cost one transaction per flush, not a write per request. Assignments are written
/// straight to the database by `otamesh device assign` (the agent need not be stopped) and read
/// back by the agent's ``reloadAssignments()``.
public final class DeviceRegistry: Sendable {
    public let path: String
    let pool: DatabasePool
    private struct State {
        var devices: [String: DeviceRecord] = [:]
        var dirty: Set<String> = []
    }
    private let state = NIOLockedValueBox(State())

    public init(path: String) throws(RegistryError) {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "otamesh.devices"
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
            let all = try pool.read { db in try DeviceRecord.fetchAll(db) }
            state.withLockedValue { state in
                for device in all { state.devices[device.id] = device }
            }
        } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: devices") { db in
            try db.create(table: "device") { t in
                t.primaryKey("id", .text)
                t.column("family", .text).notNull()
                t.column("hardware", .text)
                t.column("version", .text)
                t.column("address", .text).notNull()
                t.column("firstSeen", .double).notNull()
                t.column("lastSeen", .double).notNull()
                t.column("assignedTarget", .text)
                t.column("lastAnswer", .text)
            }
        }
        migrator.registerMigration("v2: tags and variant") { db in
            try db.alter(table: "device") { t in
                t.add(column: "tags", .text)
                t.add(column: "variant", .text)
            }
        }
        return migrator
    }

    static func describe(_ error: any Error) -> String { describeDatabaseError(error) }

    // MARK: Agent side (memory first)

    /// Records a sighting in memory; ``flush()`` persists it.
    public func observe(_ sighting: DeviceSighting, at time: Double) {
        state.withLockedValue { state in
            var record = state.devices[sighting.id]
                ?? DeviceRecord(id: sighting.id, family: sighting.family, address: sighting.address, firstSeen: time, lastSeen: time)
            record.family = sighting.family
            if let hardware = sighting.hardware { record.hardware = hardware }
            if let version = sighting.version { record.version = version }
            if let variant = sighting.variant { record.variant = variant }
            record.address = sighting.address
            record.lastSeen = time
            record.lastAnswer = sighting.answer
            state.devices[sighting.id] = record
            state.dirty.insert(sighting.id)
        }
    }

    /// The device as last seen (memory).
    public func device(_ id: String) -> DeviceRecord? {
        state.withLockedValue { $0.devices[id] }
    }

    /// The target assigned to a device, if any (memory).
    public func assignment(for id: String) -> String? {
        state.withLockedValue { $0.devices[id]?.assignedTarget }
    }

    /// Writes the sightings recorded since the last flush in one transaction. Assignments are
    /// never overwritten by a flush (they belong to the admin).
    public func flush() throws(RegistryError) {
        let pending: [DeviceRecord] = state.withLockedValue { state in
            defer { state.dirty.removeAll() }
            return state.dirty.compactMap { state.devices[$0] }
        }
        guard !pending.isEmpty else { return }
        do {
            try pool.write { db in
                for record in pending {
                    try db.execute(
                        sql: """
                            INSERT INTO device (id, family, hardware, version, address, firstSeen, lastSeen, lastAnswer, variant)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                            ON CONFLICT(id) DO UPDATE SET family = excluded.family,
                              hardware = COALESCE(excluded.hardware, hardware), version = COALESCE(excluded.version, version),
                              address = excluded.address, lastSeen = excluded.lastSeen, lastAnswer = excluded.lastAnswer,
                              variant = COALESCE(excluded.variant, variant)
                            """,
                        arguments: [record.id, record.family, record.hardware, record.version, record.address,
                                    record.firstSeen, record.lastSeen, record.lastAnswer, record.variant])
                }
            }
        } catch {
            state.withLockedValue { state in for record in pending { state.dirty.insert(record.id) } }
            throw RegistryError(path: path, reason: Self.describe(error))
        }
    }

    /// Reads assignments (and devices registered by the CLI) back from the database.
    public func reloadAssignments() throws(RegistryError) {
        let rows: [DeviceRecord]
        do { rows = try pool.read { db in try DeviceRecord.fetchAll(db) } } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
        state.withLockedValue { state in
            for row in rows {
                if var known = state.devices[row.id] {
                    known.assignedTarget = row.assignedTarget
                    known.tags = row.tags
                    state.devices[row.id] = known
                } else {
                    state.devices[row.id] = row
                }
            }
        }
    }

    // MARK: Admin side (database first)

    /// Assigns `target` (nil: clears) to a device, registering it if it was never seen.
    public func assign(_ id: String, target: String?, at time: Double) throws(RegistryError) {
        try adminSet(id, at: time, column: "assignedTarget", target, \.assignedTarget)
    }

    /// Sets a device's tags (nil or empty: none), registering it if it was never seen.
    public func setTags(_ id: String, tags: [String], at time: Double) throws(RegistryError) {
        let text = tags.isEmpty ? nil : tags.map { $0.lowercased() }.sorted().joined(separator: ",")
        try adminSet(id, at: time, column: "tags", text, \.tags)
    }

    /// Writes one admin-owned column of a device (registering a device never seen), then
    /// mirrors it in memory.
    private func adminSet(_ id: String, at time: Double, column: String, _ value: String?,
                          _ field: WritableKeyPath<DeviceRecord, String?>) throws(RegistryError) {
        do {
            try pool.write { db in
                if try DeviceRecord.fetchOne(db, key: id) == nil {
                    var fresh = DeviceRecord(id: id, family: "unknown", address: "", firstSeen: time, lastSeen: 0)
                    fresh[keyPath: field] = value
                    try fresh.insert(db)
                } else {
                    try db.execute(sql: "UPDATE device SET \(column) = ? WHERE id = ?", arguments: [value, id])
                }
            }
        } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
        state.withLockedValue { state in
            if state.devices[id] != nil { state.devices[id]?[keyPath: field] = value }
        }
    }

    /// Every device in memory (the agent's view, sightings included).
    public func all() -> [DeviceRecord] {
        state.withLockedValue { Array($0.devices.values) }
    }

    /// Every device, as stored (sightings up to one flush old while an agent runs).
    public func list() throws(RegistryError) -> [DeviceRecord] {
        do { return try pool.read { db in try DeviceRecord.order(Column("id")).fetchAll(db) } } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
    }

    /// Normalises a device id: MACs in any common spelling become `aa:bb:cc:dd:ee:ff`.
    public static func normalizedID(_ raw: String) -> String {
        let hex = raw.lowercased().filter { $0.isHexDigit }
        let separators = raw.filter { $0 == ":" || $0 == "-" || $0 == "." }
        if hex.count == 12, raw.count == 12 || raw.count == 12 + separators.count, separators.count == 0 || separators.count == 5 {
            var out = ""
            for (i, c) in hex.enumerated() {
                if i > 0 && i % 2 == 0 { out.append(":") }
                out.append(c)
            }
            return out
        }
        return raw.trimmingWhitespace()
    }
}
