import Logging
import Metrics
import NIOConcurrencyHelpers
import OTAMeshStore
import OTAMeshTransfer
import OTAMeshTrust
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
import OTAMeshCommon
#endif

/// Polls an upstream TUF repository: refreshes metadata through the full client workflow
/// (trusted metadata persisted in `tuf/`), then downloads the selected targets, each checked
/// against its signed length and SHA-256 by the store's ingest (resumable, see
/// ``ResumableFetch``) — so nothing unverified ever reaches `blobs/`.
public struct UpstreamSync: Service {
    public let metadataURL: String
    public let targetsURL: String
    public let patterns: [String]
    public let interval: Double
    public let tufDirectory: String
    public let store: BlobStore
    public let logger: Logger
    /// Downloads targets: resumable, under the retry-timeout policy, through proxies.
    public let fetch: ResumableFetch
    /// Image bytes fetched from upstream are added here.
    let traffic: TrafficTotals?
    /// Now, for TUF expiry checks and the last-success gauge.
    public let clock: WallClock
    /// Told after every sync: it may have brought metadata or images (nil: nobody listens).
    public let releases: ReleaseCatalog?
    /// Who fetches what for the site (``UpstreamFetchPlan``) and what the mesh says now (nil: no
    /// mesh, this gateway fetches everything itself).
    let plan: UpstreamFetchPlan
    let site: (@Sendable () -> SiteFetchers?)?
    /// Images being fetched by this gateway's peer sync or here.
    let claims: FetchClaims?
    /// When this gateway first decided to wait for an image (milliseconds), by SHA-256 hex.
    let waitingSince = NIOLockedValueBox<[String: Int64]>([:])

    /// What the mesh says about fetching: this gateway's name, the alive members with an
    /// upstream, and the images some alive peer holds.
    public struct SiteFetchers: Sendable, Equatable {
        public var me: String
        public var candidates: [String]
        public var held: Set<String>
        public init(me: String, candidates: [String], held: Set<String>) {
            (self.me, self.candidates, self.held) = (me, candidates, held)
        }
    }

    let syncs = Counter(label: "otamesh_upstream_syncs_total")
    let failures = Counter(label: "otamesh_upstream_failures_total")
    let lastSuccess = Gauge(label: "otamesh_upstream_last_success_timestamp_seconds")

    public init(
        metadataURL: String, targetsURL: String, patterns: [String], interval: Double, tufDirectory: String,
        store: BlobStore, fetch: ResumableFetch = ResumableFetch(), clock: WallClock = .system, releases: ReleaseCatalog? = nil,
        traffic: TrafficTotals? = nil, plan: UpstreamFetchPlan = UpstreamFetchPlan(fetchers: 0), site: (@Sendable () -> SiteFetchers?)? = nil,
        claims: FetchClaims? = nil, logger: Logger
    ) {
        self.plan = plan
        self.site = site
        self.claims = claims
        self.traffic = traffic
        self.clock = clock
        self.releases = releases
        self.metadataURL = metadataURL
        self.targetsURL = targetsURL
        self.patterns = patterns
        self.interval = interval
        self.tufDirectory = tufDirectory
        self.store = store
        self.fetch = fetch
        self.logger = logger
    }

    /// What one sync did.
    public struct Report: Sendable, Equatable {
        public var targets: [String] = []
        public var added: [String] = []
        /// Targets that failed on their own (bad bytes, a 4xx, a metadata problem), with why;
        /// the others were still fetched.
        public var failed: [String: String] = [:]
        /// Targets left to the mesh: a peer holds them, or other gateways fetch them for the site
        /// (their names), or this gateway's peer sync is fetching them.
        public var fromMesh: [String: [String]] = [:]
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await syncLogged()
                do { try await Task.sleep(for: .milliseconds(Int64(interval * 1_000))) } catch { return }
            }
        }
    }

    func syncLogged() async {
        // Even a failed sync may have saved metadata or images before it stopped.
        defer { releases?.changed("upstream sync") }
        do {
            let report = try await syncOnce(now: clock.now().wholeSeconds)
            syncs.increment()
            lastSuccess.record(clock.now().seconds)
            if !report.added.isEmpty {
                logger.info("upstream sync added targets", metadata: ["upstream.added": "\(report.added.joined(separator: ","))"])
            }
            for (path, fetchers) in report.fromMesh.sorted(by: { $0.key < $1.key }) {
                logger.debug(
                    "upstream target left to the mesh",
                    metadata: ["target.path": "\(path)", "upstream.fetchers": "\(fetchers.isEmpty ? "a peer holds it" : fetchers.joined(separator: ","))"])
            }
            for (path, why) in report.failed.sorted(by: { $0.key < $1.key }) {
                failures.increment()
                logger.error("upstream target failed", metadata: ["target.path": "\(path)", "error": "\(why)", "upstream.url": "\(metadataURL)"])
            }
        } catch {
            failures.increment()
            logger.error("upstream sync failed", metadata: ["error": "\(error)", "upstream.url": "\(metadataURL)"])
        }
    }

    /// One refresh and fetch.
    public func syncOnce(now: Int64) async throws -> Report {
        let mirror = DirectoryPersistence(directory: tufDirectory)
        var updater = Updater(
            metadata: HTTPFiles(baseURL: metadataURL), targets: HTTPFiles(baseURL: targetsURL),
            persistence: mirror, rootHistory: mirror, now: now)
        try await updater.refresh()
        let listed = updater.trusted?.targets[Role.targets]?.targets.keys.sorted() ?? []
        var report = Report()
        for path in listed where patterns.isEmpty || patterns.contains(where: { Glob.matches(pattern: $0, path: path) }) {
            // Each target's failure is its own: a bad or missing file does not keep the later
            // targets from arriving. Only an upstream that stopped answering (a network failure
            // past the retry timeout) ends the round: the next targets could only wait as long.
            do {
                guard let info = try await updater.targetInfo(path), let hex = info.hashes["sha256"] else { continue }
                let expected = ExpectedContent(digest: try BlobDigest(hex: hex), size: info.length)
                report.targets.append(path)
                if try store.blob(expected.digest) != nil {
                    waitingSince.withLockedValue { $0[hex] = nil }
                    continue
                }
                if let fetchers = deferred(hex, now: clock.now().milliseconds) {
                    report.fromMesh[path] = fetchers
                    continue
                }
                guard claims?.claim(hex) ?? true else {
                    report.fromMesh[path] = []
                    continue
                }
                defer { claims?.release(hex) }
                // Streamed into the store, resumed across failures and restarts; committed only when
                // every byte matches the signed length and SHA-256.
                let url = "\(targetsURL.hasSuffix("/") ? String(targetsURL.dropLast()) : targetsURL)/\(HTTPFiles.escapePath(updater.remotePath(of: info)))"
                let outcome = try await fetch.fetch(url, expected: expected, into: store)
                traffic?.addFromUpstream(outcome.bytesReceived)
                report.added.append(path)
            } catch let error as FetchError where error.failure.isRetryable {
                throw error
            } catch {
                report.failed[path] = "\(error)"
            }
        }
        return report
    }

    /// The gateways to leave `image` to (empty: a peer holds it), or nil: fetch it here.
    func deferred(_ image: String, now: Int64) -> [String]? {
        guard let snapshot = site?() else { return nil }
        let since = waitingSince.withLockedValue { $0[image] } ?? now
        switch plan.decide(image: image, me: snapshot.me, candidates: snapshot.candidates, held: snapshot.held.contains(image), waitedMS: now - since) {
        case .fetch:
            return nil
        case .fromMesh:
            return []
        case .wait(let fetchers):
            waitingSince.withLockedValue { if $0[image] == nil { $0[image] = now } }
            return fetchers
        }
    }
}
