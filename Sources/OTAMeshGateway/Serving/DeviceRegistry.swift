import Foundation
import GRDB
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshFirmware
import OTAMeshStore

/// One device as the gateway knows it.
/// The device registry (`devices.sqlite` in the data directory, WAL). The agent keeps every
/// device in memory and writes sightings in batches (``flush()``), so a thousand devices polling
/// each second cost one transaction per flush, not a write per request. Admin changes
/// (``DeviceChanges``: assign, tag, add, accept, remove) write the database and memory together;
/// while an agent runs they come through its admin API, so it never re-reads the database.
public final class DeviceRegistry: Sendable {
    public let path: String
    let pool: DatabasePool
    private struct State {
        var devices: [String: DeviceRecord] = [:]
        var dirty: Set<String> = []
        /// Taken by a flush that has not written them yet (memory is newer than the database).
        var flushing: Set<String> = []
        /// Devices no admin vouched for, oldest first (``UnknownLimits``); ids no longer unknown
        /// are skipped when met.
        var unknownOrder: [String] = []
        var unknownHead = 0
        var unknown: Set<String> = []
        var unknownAt: [String: [String]] = [:]
        /// Evicted from memory, to be deleted by the next flush.
        var evicted: Set<String> = []
        var evictions = 0
    }
    private let state = NIOLockedValueBox(State())

    /// How many devices that no admin added, accepted, assigned or tagged the registry keeps: a
    /// LAN neighbour inventing ids must not fill memory and the data disk. Over a cap the oldest
    /// such device (of the same address first) is forgotten; it is registered again when it asks.
    public struct UnknownLimits: Sendable, Equatable {
        public var total: Int
        public var perAddress: Int
        public init(total: Int = 20_000, perAddress: Int = 1_000) {
            self.total = max(1, total)
            self.perAddress = max(1, perAddress)
        }
    }
    private let limits: NIOLockedValueBox<UnknownLimits> = NIOLockedValueBox(UnknownLimits())

    /// The caps on unknown devices (config `devices.maxUnknown`, `devices.maxUnknownPerAddress`).
    public var unknownLimits: UnknownLimits {
        get { limits.withLockedValue { $0 } }
        set { limits.withLockedValue { $0 = newValue } }
    }

    /// Unknown devices forgotten to stay within ``unknownLimits`` since start.
    public var evictions: Int { state.withLockedValue { $0.evictions } }

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
        migrator.registerMigration("v3: push devices") { db in
            try db.alter(table: "device") { t in
                t.add(column: "proxy", .text)
                t.add(column: "options", .text)
                t.add(column: "segment", .text)
                t.add(column: "source", .text)
            }
            // Every device known before was registered by its own request.
            try db.execute(sql: "UPDATE device SET source = 'request' WHERE source IS NULL AND lastSeen > 0")
        }
        migrator.registerMigration("v4: announced options") { db in
            try db.alter(table: "device") { t in t.add(column: "announced", .text) }
        }
        migrator.registerMigration("v5: app settings") { db in
            try db.alter(table: "device") { t in t.add(column: "settings", .text) }
        }
        migrator.registerMigration("v6: failed DDI actions") { db in
            try db.alter(table: "device") { t in t.add(column: "failedAction", .integer) }
        }
        return migrator
    }

    static func describe(_ error: any Error) -> String { describeDatabaseError(error) }

    // MARK: Agent side (memory first)

    /// Records a sighting in memory; ``flush()`` persists it.
    public func observe(_ sighting: DeviceSighting, at time: Double) {
        guard sighting.isStorable else { return }
        let limits = unknownLimits
        state.withLockedValue { state in
            if state.devices[sighting.id] == nil { Self.makeRoom(&state, forUnknown: sighting.id, at: sighting.address, limits: limits) }
            var record =
                state.devices[sighting.id]
                ?? DeviceRecord(
                    id: sighting.id, family: sighting.family, address: sighting.address, firstSeen: time, lastSeen: time,
                    source: sighting.source)
            if record.source == nil { record.source = sighting.source }
            record.family = sighting.family
            if let hardware = sighting.hardware { record.hardware = hardware }
            if let version = sighting.version { record.version = version }
            if let variant = sighting.variant { record.variant = variant }
            if sighting.source == "mdns" || !sighting.options.isEmpty {
                record.announced = DeviceRecord.encodeOptions(sighting.options)
            }
            record.address = sighting.address
            record.lastSeen = time
            record.lastAnswer = sighting.answer
            state.devices[sighting.id] = record
            state.dirty.insert(sighting.id)
        }
    }

    /// Registers `id` as a new unknown device from `address`, forgetting the oldest unknown ones
    /// over the caps (of this address first, then of all).
    private static func makeRoom(_ state: inout State, forUnknown id: String, at address: String, limits: UnknownLimits) {
        func isUnknown(_ id: String, at address: String? = nil) -> Bool {
            guard let record = state.devices[id], !record.admitted, record.tags == nil else { return false }
            return address == nil || record.address == address
        }
        func evict(_ victim: String) {
            state.devices[victim] = nil
            state.dirty.remove(victim)
            state.unknown.remove(victim)
            state.evicted.insert(victim)
            state.evictions += 1
        }
        var mine = (state.unknownAt[address] ?? []).filter { isUnknown($0, at: address) }
        while mine.count >= limits.perAddress { evict(mine.removeFirst()) }
        while state.unknown.count >= limits.total, state.unknownHead < state.unknownOrder.count {
            let oldest = state.unknownOrder[state.unknownHead]
            state.unknownHead += 1
            guard state.unknown.remove(oldest) != nil else { continue }
            if isUnknown(oldest) { evict(oldest) }
        }
        if state.unknownHead > 1024, state.unknownHead * 2 > state.unknownOrder.count {
            state.unknownOrder.removeFirst(state.unknownHead)
            state.unknownHead = 0
        }
        if state.unknownAt.count > 2 * limits.total {
            // Lists of addresses whose devices were all forgotten or vouched for hold only stale
            // ids: rebuilt from the devices still unknown, in arrival order.
            var rebuilt: [String: [String]] = [:]
            for known in state.unknownOrder[state.unknownHead...] where state.unknown.contains(known) && isUnknown(known) {
                rebuilt[state.devices[known]!.address, default: []].append(known)
            }
            state.unknownAt = rebuilt
        }
        mine.append(id)
        state.unknownAt[address] = mine
        state.unknown.insert(id)
        state.unknownOrder.append(id)
        state.evicted.remove(id)
    }

    /// The device as last seen (memory).
    public func device(_ id: String) -> DeviceRecord? {
        state.withLockedValue { $0.devices[id] }
    }

    /// The target assigned to a device, if any (memory).
    public func assignment(for id: String) -> String? {
        state.withLockedValue { $0.devices[id]?.assignedTarget }
    }

    /// A push confirmed the version (and variant) a device runs: memory first, like a sighting.
    public func confirmed(_ id: String, version: String, variant: String?, answer: String, at time: Double) {
        state.withLockedValue { state in
            guard var record = state.devices[id] else { return }
            record.version = version
            if let variant { record.variant = variant }
            record.lastSeen = time
            record.lastAnswer = answer
            state.devices[id] = record
            state.dirty.insert(id)
        }
    }

    /// A DDI device's manual-assignment action closed with a failure (nil: it succeeded): memory
    /// first, like a sighting, so it survives a restart.
    public func noteFailedAction(_ id: String, _ action: Int64?) {
        state.withLockedValue { state in
            guard var record = state.devices[id], record.failedAction != action else { return }
            record.failedAction = action
            state.devices[id] = record
            state.dirty.insert(id)
        }
    }

    /// A rollout outcome of this gateway's device becomes its last answer, so `otamesh devices`
    /// shows where it stands under the rollout that governs it, not what it was told earlier.
    public func noteOutcome(_ id: String, answer: String) {
        state.withLockedValue { state in
            guard var record = state.devices[id], record.lastAnswer != answer else { return }
            record.lastAnswer = answer
            state.devices[id] = record
            state.dirty.insert(id)
        }
    }

    /// Writes the sightings recorded since the last flush in one transaction. Assignments and
    /// the other admin-owned columns are never overwritten by a flush.
    public func flush() throws(RegistryError) {
        let (pending, evicted): ([DeviceRecord], Set<String>) = state.withLockedValue { state in
            defer {
                state.flushing.formUnion(state.dirty)
                state.dirty.removeAll()
                state.evicted.removeAll()
            }
            return (state.dirty.compactMap { state.devices[$0] }, state.evicted)
        }
        guard !pending.isEmpty || !evicted.isEmpty else { return }
        defer { state.withLockedValue { state in for record in pending { state.flushing.remove(record.id) } } }
        do {
            try pool.write { db in
                // Forgotten unknown devices, unless an admin vouched for one in the meantime.
                for id in evicted {
                    try db.execute(
                        sql:
                            "DELETE FROM device WHERE id = ? AND (source IS NULL OR source IN ('request', 'mdns')) AND assignedTarget IS NULL AND tags IS NULL",
                        arguments: [id])
                }
                for record in pending {
                    try db.execute(
                        sql: """
                            INSERT INTO device (id, family, hardware, version, address, firstSeen, lastSeen, lastAnswer, variant, source, announced, failedAction)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            ON CONFLICT(id) DO UPDATE SET family = excluded.family,
                              hardware = COALESCE(excluded.hardware, hardware), version = COALESCE(excluded.version, version),
                              address = excluded.address, lastSeen = excluded.lastSeen, lastAnswer = excluded.lastAnswer,
                              variant = COALESCE(excluded.variant, variant), source = COALESCE(source, excluded.source),
                              announced = excluded.announced, failedAction = excluded.failedAction
                            """,
                        arguments: [
                            record.id, record.family, record.hardware, record.version, record.address,
                            record.firstSeen, record.lastSeen, record.lastAnswer, record.variant, record.source, record.announced,
                            record.failedAction,
                        ])
                }
            }
        } catch {
            state.withLockedValue { state in
                for record in pending { state.dirty.insert(record.id) }
                for id in evicted where state.devices[id] == nil { state.evicted.insert(id) }
            }
            throw RegistryError(path: path, reason: Self.describe(error))
        }
    }

    /// Reads back what another process wrote to the database: assignments, tags, devices added,
    /// changed (address, family, proxy, options, segment) or removed. A device with a sighting
    /// not yet flushed keeps the sighting's fields and takes the admin's. The agent does not need
    /// it (changes reach it through its admin API); it stays for tools that share a database.
    public func reloadAssignments() throws(RegistryError) {
        let rows: [DeviceRecord]
        do { rows = try pool.read { db in try DeviceRecord.fetchAll(db) } } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
        state.withLockedValue { state in
            var stored = Set<String>()
            for row in rows {
                stored.insert(row.id)
                // Forgotten (over the unknown caps) and not deleted yet: stays forgotten.
                if state.evicted.contains(row.id) && row.source != "manual" && row.source != "accepted" && row.assignedTarget == nil && row.tags == nil {
                    continue
                }
                guard var known = state.devices[row.id], state.dirty.contains(row.id) || state.flushing.contains(row.id) else {
                    state.devices[row.id] = row  // the database is as new as memory: it holds the admin's changes too
                    continue
                }
                known.assignedTarget = row.assignedTarget
                known.tags = row.tags
                known.proxy = row.proxy
                known.options = row.options
                known.segment = row.segment
                known.source = row.source ?? known.source
                state.devices[row.id] = known
            }
            // Gone from the database and nothing unwritten: `otamesh device remove` removed it.
            let removed = state.devices.keys.filter { !stored.contains($0) && !state.dirty.contains($0) && !state.flushing.contains($0) }
            for id in removed { state.devices[id] = nil }
        }
    }

    // MARK: Admin side (database first)

    /// Assigns `target` (nil: clears) to a device, registering it if it was never seen. A DDI
    /// action that failed under the previous assignment is offered again.
    public func assign(_ id: String, target: String?, at time: Double) throws(RegistryError) {
        try adminSet(id, at: time, column: "assignedTarget", target, \.assignedTarget, resetsFailedAction: true)
    }

    /// Sets a device's tags (nil or empty: none), registering it if it was never seen.
    public func setTags(_ id: String, tags: [String], at time: Double) throws(RegistryError) {
        let text = tags.isEmpty ? nil : tags.map { $0.lowercased() }.sorted().joined(separator: ",")
        try adminSet(id, at: time, column: "tags", text, \.tags)
    }

    /// Sets (nil: clears) a device's app settings (``DeviceRecord/settings``).
    public func setSettings(_ id: String, settings: String?, at time: Double) throws(RegistryError) {
        try adminSet(id, at: time, column: "settings", settings, \.settings)
    }

    /// Adds a device by hand (`otamesh device add`), or redefines one: family, address, proxy,
    /// options and segment become what `device` says; hardware, variant, version and tags only
    /// where it names them. Source becomes `manual`.
    public func add(_ device: DeviceRecord) throws(RegistryError) {
        var record = device
        record.source = "manual"
        do {
            try pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO device (id, family, hardware, version, address, firstSeen, lastSeen, tags, variant, proxy, options, segment, source)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(id) DO UPDATE SET family = excluded.family, address = excluded.address,
                          hardware = COALESCE(excluded.hardware, hardware), version = COALESCE(excluded.version, version),
                          variant = COALESCE(excluded.variant, variant), tags = COALESCE(excluded.tags, tags),
                          proxy = excluded.proxy, options = excluded.options, segment = excluded.segment, source = excluded.source
                        """,
                    arguments: [
                        record.id, record.family, record.hardware, record.version, record.address, record.firstSeen, record.lastSeen,
                        record.tags, record.variant, record.proxy, record.options, record.segment, record.source,
                    ])
                if let row = try DeviceRecord.fetchOne(db, key: record.id) { record = row }
            }
        } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
        state.withLockedValue { $0.devices[record.id] = record }
    }

    /// Admits a device that asked or was discovered (`otamesh device accept`), so rollouts
    /// update it under `devices.admission: known`. False when no such device is known.
    @discardableResult
    public func accept(_ id: String) throws(RegistryError) -> Bool {
        let changed: Bool
        // A device seen by this process but not flushed yet is written now, accepted.
        let unwritten = state.withLockedValue { $0.devices[id] }
        do {
            changed = try pool.write { db in
                if try DeviceRecord.fetchOne(db, key: id) == nil {
                    guard var record = unwritten else { return false }
                    record.source = "accepted"
                    try record.insert(db)
                    return true
                }
                try db.execute(sql: "UPDATE device SET source = 'accepted' WHERE id = ? AND (source IS NULL OR source != 'manual')", arguments: [id])
                return true
            }
        } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
        if changed {
            let stored = try? pool.read { db in try DeviceRecord.fetchOne(db, key: id) }
            state.withLockedValue { state in
                if state.devices[id] == nil, let stored {
                    state.devices[id] = stored
                    state.evicted.remove(id)
                } else if state.devices[id]?.source != "manual" {
                    state.devices[id]?.source = "accepted"
                }
            }
        }
        return changed
    }

    /// Removes a device (and its assignment); false when there was none.
    @discardableResult
    public func remove(_ id: String) throws(RegistryError) -> Bool {
        let removed: Bool
        do { removed = try pool.write { db in try DeviceRecord.deleteOne(db, key: id) } } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
        state.withLockedValue { state in
            state.devices[id] = nil
            state.dirty.remove(id)
        }
        return removed
    }

    /// Writes one admin-owned column of a device (registering a device never seen), then
    /// mirrors it in memory.
    private func adminSet(
        _ id: String, at time: Double, column: String, _ value: String?,
        _ field: WritableKeyPath<DeviceRecord, String?>, resetsFailedAction: Bool = false
    ) throws(RegistryError) {
        let stored: DeviceRecord?
        do {
            stored = try pool.write { db in
                if try DeviceRecord.fetchOne(db, key: id) == nil {
                    var fresh = DeviceRecord(id: id, family: DeviceFamily(rawValue: "unknown"), address: "", firstSeen: time, lastSeen: 0)
                    fresh[keyPath: field] = value
                    try fresh.insert(db)
                } else {
                    let reset = resetsFailedAction ? ", failedAction = NULL" : ""
                    try db.execute(sql: "UPDATE device SET \(column) = ?\(reset) WHERE id = ?", arguments: [value, id])
                }
                return try DeviceRecord.fetchOne(db, key: id)
            }
        } catch {
            throw RegistryError(path: path, reason: Self.describe(error))
        }
        state.withLockedValue { state in
            if state.devices[id] != nil {
                state.devices[id]?[keyPath: field] = value
                if resetsFailedAction { state.devices[id]?.failedAction = nil }
            } else if let stored {
                // Not in memory (never seen here, or forgotten): the admin's record serves from now on.
                state.devices[id] = stored
                state.evicted.remove(id)
            }
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
