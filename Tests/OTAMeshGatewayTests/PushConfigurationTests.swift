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
                  max_concurrent: 20
                  max_per_segment: 5
                  retry_timeout: 2m
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
                  retry_timeout: 45s
                  arduino-ota:
                    retry_timeout: 2m
                  fetch-url:
                    deadline: 20m
                """, source: "otamesh.yaml")
        try config.apply(environment: ["OTAMESH_PUSH_RETRY_TIMEOUT": "projectmm=10s"])
        try config.set("push.deadline", "5m,http-upload=1m", source: "--push-deadline")
        let timing = Dictionary(uniqueKeysWithValues: DeviceFamily.push.map { ($0, config.pushTiming(family: $0)) })
        #expect(timing.mapValues(\.retry.retryTimeout) == [.projectMM: 10, .httpUpload: 45, .arduinoOTA: 120, .fetchURL: 45])
        #expect(timing.mapValues(\.deadline) == [.projectMM: 300_000, .httpUpload: 60_000, .arduinoOTA: 300_000, .fetchURL: 1_200_000])
    }

    @Test("bad values are errors naming the source and key, and change nothing")
    func badValues() {
        var config = AgentConfiguration(nodeName: "gw-1")
        for (key, value) in [
            ("push.max_concurrent", "0"), ("push.max_concurrent", "many"), ("push.max_per_segment", "-1"),
            ("push.retry_timeout", "soon"), ("push.deadline", "0s"), ("push.retry_timeout", "espnow=1m"),
            ("push.retry_timeout", "30s,40s"), ("push.retry_timeout", "projectmm=1m,projectmm=2m"),
            ("push.retry_timeout", "1m,arduino-ota=soon"), ("push.deadline", "fetch-url=0s"), ("push.retry_timeout", ","),
            ("push.arduino-ota.deadline", "1m,2m"), ("push.arduino-ota.timeout", "1m"),
        ] {
            #expect(throws: ConfigurationError.self, "\(key)=\(value)") { try config.set(key, value, source: "--x") }
        }
        #expect(config.pushLimits == PushQueue.Limits(maxConcurrent: 32, maxPerSegment: 16) && config.pushDeadline == 600)
        #expect(config.pushRetryTimeout == 30 && config.pushRetryTimeoutByFamily.isEmpty && config.pushDeadlineByFamily.isEmpty)
        let unknown = #expect(throws: ConfigurationError.self) { try config.set("push.retry_timeout", "30s,espnow=1m", source: "--x") }
        #expect(unknown?.description.contains("unknown push family espnow") == true)
        let error = #expect(throws: ConfigurationError.self) { try config.set("push.max_concurrent", "0", source: "otamesh.yaml: push.max_concurrent") }
        #expect(error?.description.contains("otamesh.yaml: push.max_concurrent") == true)
    }
}
