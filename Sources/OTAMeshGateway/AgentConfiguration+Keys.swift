extension AgentConfiguration {
    /// The documented keys, for `--help` and docs/operations.md.
    public static let keys: [(file: String, env: String, flag: String, meaning: String)] =
        [
            ("dataDir", "OTAMESH_DATA_DIR", "--data-dir", "data directory (default ./otamesh-data)"),
            ("nodeName", "OTAMESH_NODE_NAME", "--node-name", "this gateway's name (default: host name)"),
            ("admin.listen", "OTAMESH_ADMIN_LISTEN", "--admin-listen", "admin API and /metrics HOST:PORT (default 127.0.0.1:8071)"),
            (
                "admin.tokenFile", "OTAMESH_ADMIN_TOKEN_FILE", "--admin-token-file",
                "admin API bearer token, role admin (default DATA/keys/admin.token, created if missing)"
            ),
            (
                "admin.readTokenFile", "OTAMESH_ADMIN_READ_TOKEN_FILE", "--admin-read-token-file",
                "admin API bearer token, role read-only: GET/HEAD (default DATA/keys/read.token, created if missing)"
            ),
            ("device.listen", "OTAMESH_DEVICE_LISTEN", "--device-listen", "device HTTP HOST:PORT (default 0.0.0.0:8070)"),
            (
                "device.tlsListen", "OTAMESH_DEVICE_TLS_LISTEN", "--device-tls-listen",
                "device HTTPS HOST:PORT or off (default 0.0.0.0:8443, once the site CA exists)"
            ),
            (
                "device.idleTimeout", "OTAMESH_DEVICE_IDLE_TIMEOUT", "--device-idle-timeout",
                "close device connections idle this long, never during a download (default 2m)"
            ),
            ("admin.idleTimeout", "OTAMESH_ADMIN_IDLE_TIMEOUT", "--admin-idle-timeout", "close admin API connections idle this long (default 1m)"),
            (
                "admin.tls", "OTAMESH_ADMIN_TLS", "--admin-tls",
                "admin API over HTTPS with the site CA's gateway certificate: auto (when admin.listen is not loopback), on or off (default auto)"
            ),
            (
                "admin.insecureClearText", "OTAMESH_ADMIN_INSECURE_CLEAR_TEXT", "--admin-insecure-clear-text",
                "serve the admin API in clear text on a non-loopback address anyway: true or false (default false; refused otherwise)"
            ),
            (
                "device.maxConnections", "OTAMESH_DEVICE_MAX_CONNECTIONS", "--device-max-connections",
                "device connections at once; over it the oldest idle one is closed (default: from the open-files limit)"
            ),
            (
                "device.maxConnectionsPerAddress", "OTAMESH_DEVICE_MAX_CONNECTIONS_PER_ADDRESS", "--device-max-connections-per-address",
                "device connections at once from one address (default: a quarter of device.maxConnections, at most 256)"
            ),
            ("cache.quota", "OTAMESH_CACHE_QUOTA", "--cache-quota", "cache size limit: bytes or 512MiB, 8GiB, unlimited (default 8GiB)"),
            ("cache.partialMaxAge", "OTAMESH_PARTIAL_MAX_AGE", "--partial-max-age", "drop partial downloads older than this: 30m, 12h, 7d (default 7d)"),
            ("log.level", "OTAMESH_LOG_LEVEL", "--log-level", "trace…critical (default info)"),
            ("log.format", "OTAMESH_LOG_FORMAT", "--log-format", "text or json (default text)"),
            ("upstream.metadataURL", "OTAMESH_UPSTREAM_METADATA_URL", "--upstream-metadata-url", "upstream TUF metadata base URL (default: none, no sync)"),
            ("upstream.targetsURL", "OTAMESH_UPSTREAM_TARGETS_URL", "--upstream-targets-url", "upstream TUF targets base URL"),
            ("upstream.targets", "OTAMESH_UPSTREAM_TARGETS", "--upstream-targets", "comma-separated target path globs to fetch (default: all)"),
            ("upstream.interval", "OTAMESH_UPSTREAM_INTERVAL", "--upstream-interval", "time between upstream polls (default 5m)"),
            (
                "upstream.fetchers", "OTAMESH_UPSTREAM_FETCHERS", "--upstream-fetchers",
                "how many upstream-connected gateways fetch each new image for the site; 0: each its own (default 1)"
            ),
            (
                "upstream.handover", "OTAMESH_UPSTREAM_HANDOVER", "--upstream-handover",
                "one more gateway fetches an image from upstream each time this passes without it in the mesh (default 10m)"
            ),
            ("upstream.proxy", "OTAMESH_UPSTREAM_PROXY", "--upstream-proxy", "HTTP proxy http://HOST:PORT for upstream (default: $HTTP_PROXY / $HTTPS_PROXY)"),
            (
                "upstream.noProxy", "OTAMESH_UPSTREAM_NO_PROXY", "--upstream-no-proxy",
                "comma-separated hosts/domains that bypass the proxy (default: $NO_PROXY)"
            ),
            (
                "transfer.retryTimeout", "OTAMESH_TRANSFER_RETRY_TIMEOUT", "--transfer-retry-timeout",
                "keep resuming a download after network failures this long (default 5m)"
            ),
            ("trust.root", "OTAMESH_TRUST_ROOT", "--trust-root", "the site's root.json, installed into tuf/ if none is trusted yet"),
            ("gossip.listen", "OTAMESH_GOSSIP_LISTEN", "--gossip-listen", "gossip UDP+TCP HOST:PORT, or off (default 0.0.0.0:7946)"),
            (
                "gossip.advertise", "OTAMESH_GOSSIP_ADVERTISE", "--gossip-advertise",
                "IP address peers reach this gateway at (default: listen address or first non-loopback)"
            ),
            ("gossip.join", "OTAMESH_GOSSIP_JOIN", "--join", "comma-separated static peers HOST:PORT (flag repeatable)"),
            ("site.keyring", "OTAMESH_SITE_KEYRING", "--site-keyring", "site keyring file (default DATA/keys/site.keyring, created if missing)"),
            ("discovery", "OTAMESH_DISCOVERY", "--discovery", "mdns or off (default mdns)"),
            (
                "devices.discovery", "OTAMESH_DEVICE_DISCOVERY", "--device-discovery",
                "find push devices by mDNS (_arduino._tcp, _esphomelib._tcp, _http._tcp): mdns or off (default mdns)"
            ),
            (
                "site.trust", "OTAMESH_SITE_TRUST", "--site-trust",
                "site trust file: admin keys for rollouts (default DATA/keys/site-trust.json; rollouts off without one)"
            ),
            (
                "push.maxConcurrent", "OTAMESH_PUSH_MAX_CONCURRENT", "--push-max-concurrent",
                "pushes to push devices at once, all rollouts together (default 32)"
            ),
            ("push.maxPerSegment", "OTAMESH_PUSH_MAX_PER_SEGMENT", "--push-max-per-segment", "pushes at once per network segment (default 16)"),
            (
                "push.retryTimeout", "OTAMESH_PUSH_RETRY_TIMEOUT", "--push-retry-timeout",
                "retry a push device that cannot be reached this long before it took the image; per family: 30s,arduino-ota=2m (default 30s)"
            ),
            (
                "security.insecurePermissions", "OTAMESH_INSECURE_PERMISSIONS", "--insecure-permissions",
                "accept secret files (tokens, keyring, device secrets) others can read: true or false (default false)"
            ),
            (
                "push.deadline", "OTAMESH_PUSH_DEADLINE", "--push-deadline",
                "one push's whole time, to the confirmed version; per family: 10m,fetch-url=20m (default 10m)"
            ),
            (
                "alerts.webhook", "OTAMESH_ALERTS_WEBHOOK", "--alerts-webhook",
                "URL POSTed a JSON event when a rollout is approved, halts, completes or is aborted (default: none)"
            ),
            (
                "devices.maxUnknown", "OTAMESH_DEVICES_MAX_UNKNOWN", "--devices-max-unknown",
                "devices kept that no admin added, accepted, assigned or tagged; over it the oldest is forgotten (default 20000)"
            ),
            (
                "devices.maxUnknownPerAddress", "OTAMESH_DEVICES_MAX_UNKNOWN_PER_ADDRESS", "--devices-max-unknown-per-address",
                "the same, per client address (default 1000)"
            ),
            (
                "devices.admission", "OTAMESH_DEVICE_ADMISSION", "--device-admission",
                "open (every device is updated) or known (only devices an admin added or accepted; default open)"
            ),
        ] + DDISettings.keys
}
