import OTAMeshRollout
import Testing

@testable import OTAMeshGateway

/// The push.* keys: defaults, layers, bad values, and what they feed (limits, adapter timing).
@Suite("push configuration")
struct PushConfigurationTests {
    @Test("defaults: 8 at once, 4 per segment, 30 s retry timeout, 10 min deadline")
    func defaults() {
        let config = AgentConfiguration(nodeName: "gw-1")
        #expect(config.pushLimits == PushQueue.Limits(maxConcurrent: 32, maxPerSegment: 16))
        #expect(config.pushTiming.retry.retryTimeout == 30 && config.pushTiming.deadline == 600_000)
    }

    @Test("file < environment < flags; the values reach the limits and every adapter's timing")
    func layers() throws {
        var config = AgentConfiguration(nodeName: "gw-1")
        try config.apply(yaml: """
            push:
              max_concurrent: 20
              max_per_segment: 5
              retry_timeout: 2m
              deadline: 15m
            """, source: "otamesh.yaml")
        try config.apply(environment: ["OTAMESH_PUSH_MAX_PER_SEGMENT": "3"])
        try config.set("push.deadline", "90s", source: "--push-deadline")
        #expect(config.pushLimits == PushQueue.Limits(maxConcurrent: 20, maxPerSegment: 3))
        #expect(config.pushTiming.retry.retryTimeout == 120 && config.pushTiming.deadline == 90_000)
    }

    @Test("bad values are errors naming the source and key, and change nothing")
    func badValues() {
        var config = AgentConfiguration(nodeName: "gw-1")
        for (key, value) in [("push.max_concurrent", "0"), ("push.max_concurrent", "many"), ("push.max_per_segment", "-1"),
                             ("push.retry_timeout", "soon"), ("push.deadline", "0s")] {
            #expect(throws: ConfigurationError.self, "\(key)=\(value)") { try config.set(key, value, source: "--x") }
        }
        #expect(config.pushLimits == PushQueue.Limits(maxConcurrent: 32, maxPerSegment: 16) && config.pushDeadline == 600)
        let error = #expect(throws: ConfigurationError.self) { try config.set("push.max_concurrent", "0", source: "otamesh.yaml: push.max_concurrent") }
        #expect(error?.description.contains("otamesh.yaml: push.max_concurrent") == true)
    }
}
