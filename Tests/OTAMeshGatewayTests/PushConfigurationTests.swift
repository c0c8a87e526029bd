import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import Testing

@testable import OTAMeshGateway

/// The push.* keys: defaults, layers, bad values, and what they feed (limits, adapter timing).
@Suite("push configuration")
struct PushConfigurationTests {
    @Test("defaults: 32 at once, 16 per segment, 30 s retry timeout and 10 min deadline for every family")
    func defaults() {
        let config = AgentConfiguration(nodeName: "gw-1")
        #expect(config.pushLimits == PushQueue.Limits(maxConcurrent: 32, maxPerSegment: 16))
        for family in DeviceFamily.push {
            #expect(config.pushTiming(family: family).retry.retryTimeout == 30 && config.pushTiming(family: family).deadline == 600_000)
        }
    }

    @Test("file < environment < flags; the values reach the limits and every adapter's timing")
    func layers() throws {
        var config = AgentConfiguration(nodeName: "gw-1")
        try config.apply(
            yaml: """
                push:
                  maxConcurrent: 20
                  maxPerSegment: 5
                  retryTimeout: 2m
                  deadline: 15m
                """, source: "otamesh.yaml")
        try config.apply(environment: ["OTAMESH_PUSH_MAX_PER_SEGMENT": "3"])
        try config.set("push.deadline", "90s", source: "--push-deadline")
        #expect(config.pushLimits == PushQueue.Limits(maxConcurrent: 20, maxPerSegment: 3))
        #expect(config.pushTiming(family: .projectMM).retry.retryTimeout == 120 && config.pushTiming(family: .projectMM).deadline == 90_000)
    }

    @Test("each adapter has its own retry policy: a family's value beats the gateway's, in the nested file form, the list form and the environment")
    func perFamily() throws {
        var config = AgentConfiguration(nodeName: "gw-1")
        try config.apply(
            yaml: """
                push:
                  retryTimeout: 45s
                  arduino-ota:
                    retryTimeout: 2m
                  fetch-url:
                    deadline: 20m
                """, source: "otamesh.yaml")
        try config.apply(environment: ["OTAMESH_PUSH_RETRY_TIMEOUT": "projectmm=10s"])
        try config.set("push.deadline", "5m,http-upload=1m", source: "--push-deadline")
        let timing = Dictionary(uniqueKeysWithValues: DeviceFamily.push.map { ($0, config.pushTiming(family: $0)) })
        #expect(timing.mapValues(\.retry.retryTimeout) == [.projectMM: 10, .httpUpload: 45, .arduinoOTA: 120, .fetchURL: 45])
        #expect(timing.mapValues(\.deadline) == [.projectMM: 300_000, .httpUpload: 60_000, .arduinoOTA: 300_000, .fetchURL: 1_200_000])
    }

    @Test("the old underscore spellings still work, each with one warning naming where it was used and the new spelling")
    func oldSpellings() throws {
        var config = AgentConfiguration(nodeName: "gw-1")
        try config.apply(
            yaml: """
                admin:
                  token_file: /etc/otamesh/admin.token
                push:
                  max_concurrent: 20
                  max_per_segment: 5
                  retry_timeout: 45s
                  arduino-ota:
                    retry_timeout: 2m
                """, source: "otamesh.yaml")
        try config.set("push.max_concurrent", "21", source: "--x")
        #expect(config.adminTokenFile == "/etc/otamesh/admin.token")
        #expect(config.pushLimits == PushQueue.Limits(maxConcurrent: 21, maxPerSegment: 5))
        #expect(config.pushTiming(family: .arduinoOTA).retry.retryTimeout == 120 && config.pushTiming(family: .projectMM).retry.retryTimeout == 45)
        #expect(
            config.deprecations == [
                "otamesh.yaml: admin.token_file is now spelled admin.tokenFile; the old spelling still works",
                "otamesh.yaml: push.max_concurrent is now spelled push.maxConcurrent; the old spelling still works",
                "otamesh.yaml: push.max_per_segment is now spelled push.maxPerSegment; the old spelling still works",
                "otamesh.yaml: push.retry_timeout is now spelled push.retryTimeout; the old spelling still works",
                "otamesh.yaml: push.arduino-ota.retry_timeout is now spelled push.arduino-ota.retryTimeout; the old spelling still works",
                "--x: push.max_concurrent is now spelled push.maxConcurrent; the old spelling still works",
            ])
        // A bad value under an old spelling is refused like under the new one.
        #expect(throws: ConfigurationError.self) { try config.set("push.max_concurrent", "0", source: "--x") }
        #expect(config.pushLimits.maxConcurrent == 21)
    }

    @Test("bad values are errors naming the source and key, and change nothing")
    func badValues() {
        var config = AgentConfiguration(nodeName: "gw-1")
        for (key, value) in [
            ("push.maxConcurrent", "0"), ("push.maxConcurrent", "many"), ("push.maxPerSegment", "-1"),
            ("push.retryTimeout", "soon"), ("push.deadline", "0s"), ("push.retryTimeout", "espnow=1m"),
            ("push.retryTimeout", "30s,40s"), ("push.retryTimeout", "projectmm=1m,projectmm=2m"),
            ("push.retryTimeout", "1m,arduino-ota=soon"), ("push.deadline", "fetch-url=0s"), ("push.retryTimeout", ","),
            ("push.arduino-ota.deadline", "1m,2m"), ("push.arduino-ota.timeout", "1m"),
        ] {
            #expect(throws: ConfigurationError.self, "\(key)=\(value)") { try config.set(key, value, source: "--x") }
        }
        #expect(config.pushLimits == PushQueue.Limits(maxConcurrent: 32, maxPerSegment: 16) && config.pushDeadline == 600)
        #expect(config.pushRetryTimeout == 30 && config.pushRetryTimeoutByFamily.isEmpty && config.pushDeadlineByFamily.isEmpty)
        let unknown = #expect(throws: ConfigurationError.self) { try config.set("push.retryTimeout", "30s,espnow=1m", source: "--x") }
        #expect(unknown?.description.contains("unknown push family espnow") == true)
        let error = #expect(throws: ConfigurationError.self) { try config.set("push.maxConcurrent", "0", source: "otamesh.yaml: push.maxConcurrent") }
        #expect(error?.description.contains("otamesh.yaml: push.maxConcurrent") == true)
    }
}
