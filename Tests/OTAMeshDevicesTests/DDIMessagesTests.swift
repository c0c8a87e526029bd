import Foundation
import OTAMeshDevices
import Testing

/// hawkBit DDI's formats as SWUpdate 2022.12 and hawkBit's own models read and write them.
@Suite("DDI messages")
struct DDIMessagesTests {
    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test("the polling interval is HH:MM:SS, at least one second and at most 23:59:59 (SWUpdate parses it with %H:%M:%S)")
    func sleep() {
        #expect(DDI.sleep(seconds: 300) == "00:05:00")
        #expect(DDI.sleep(seconds: 3723) == "01:02:03")
        #expect(DDI.sleep(seconds: 0) == "00:00:01")
        #expect(DDI.sleep(seconds: 200_000) == "23:59:59")
    }

    @Test("the controller base always carries config.polling.sleep, and only the links that apply")
    func controllerBase() throws {
        let idle = try Self.object(DDI.controllerBase(sleep: 60, deploymentBase: nil, configData: nil, cancelAction: nil))
        #expect(((idle["config"] as? [String: Any])?["polling"] as? [String: Any])?["sleep"] as? String == "00:01:00")
        #expect((idle["_links"] as? [String: Any])?.isEmpty == true)
        let busy = try Self.object(
            DDI.controllerBase(sleep: 5, deploymentBase: "http://g/T/controller/v1/d/deploymentBase/7", configData: "c", cancelAction: nil))
        let links = try #require(busy["_links"] as? [String: Any])
        #expect((links["deploymentBase"] as? [String: Any])?["href"] as? String == "http://g/T/controller/v1/d/deploymentBase/7")
        #expect(links["cancelAction"] == nil && links["configData"] != nil)
    }

    @Test("a deployment names its action, forced download and update, one chunk, and the artifact's size, hashes and both links")
    func deploymentBase() throws {
        let artifact = DDI.Artifact(
            filename: "door.swu", size: 2560, sha1: "a9993e364706816aba3e25717850c26c9cd0d89d", md5: "900150983cd24fb0d6963f7d28e17f72",
            sha256: String(repeating: "ab", count: 32), download: "https://g:8443/v1/targets/door.swu", downloadHTTP: "http://g:8070/v1/targets/door.swu")
        let body = try Self.object(
            DDI.deploymentBase(
                actionID: 7, download: .forced, update: .attempt, maintenanceWindowAvailable: false, part: "os", version: "2.0.0", name: "door",
                artifacts: [artifact]))
        #expect(body["id"] as? String == "7")
        let deployment = try #require(body["deployment"] as? [String: Any])
        #expect(deployment["download"] as? String == "forced" && deployment["update"] as? String == "attempt")
        #expect(deployment["maintenanceWindow"] as? String == "unavailable")
        let chunk = try #require((deployment["chunks"] as? [[String: Any]])?.first)
        #expect(chunk["part"] as? String == "os" && chunk["version"] as? String == "2.0.0" && chunk["name"] as? String == "door")
        let first = try #require((chunk["artifacts"] as? [[String: Any]])?.first)
        #expect(first["filename"] as? String == "door.swu" && (first["size"] as? NSNumber)?.intValue == 2560)
        #expect((first["hashes"] as? [String: String])?["sha1"] == artifact.sha1)
        let links = try #require(first["_links"] as? [String: [String: String]])
        #expect(links["download"]?["href"] == artifact.download && links["download-http"]?["href"] == artifact.downloadHTTP)
    }

    @Test("feedback in SWUpdate's form (numeric id, time), hawkBit's current form (timestamp, code) and with the id as a string all read")
    func feedback() throws {
        let swupdate =
            #"{ "id": 7, "time": "20261207T200036", "status": { "result": { "progress": { "cnt" : 1, "of" : 1 }, "finished": "none" }, "execution": "proceeding", "details" : [ "All Chunks Installed." ] } }"#
        let parsed = try DDI.Feedback(json: Array(swupdate.utf8))
        #expect(parsed.actionID == 7 && parsed.execution == .proceeding && parsed.finished == .none)
        #expect(parsed.progress?.count == 1 && parsed.progress?.of == 1 && parsed.details == ["All Chunks Installed."])
        let current =
            #"{"timestamp": 1627997501890, "status": {"execution": "closed", "result": {"finished": "failure"}, "code": 42, "details": ["disk full"]}}"#
        let closed = try DDI.Feedback(json: Array(current.utf8))
        #expect(closed.actionID == nil && closed.execution == .closed && closed.finished == .failure && closed.code == 42)
        #expect(try DDI.Feedback(json: Array(#"{"id":"12","status":{"execution":"closed","result":{"finished":"success"}}}"#.utf8)).actionID == 12)
    }

    @Test(
        "bad feedback is refused with what is wrong; details are bounded and control characters replaced",
        arguments: [
            ("[]", "not a JSON object"), ("{}", "missing 'status'"),
            (#"{"status":{"execution":"exploded","result":{"finished":"none"}}}"#, "status.execution must be one of"),
            (#"{"status":{"execution":"closed","result":{}}}"#, "status.result.finished must be"),
            ("{", "not a JSON object"),
        ])
    func badFeedback(text: String, expected: String) {
        #expect(throws: DDIError.self) { try DDI.Feedback(json: Array(text.utf8)) }
        do { _ = try DDI.Feedback(json: Array(text.utf8)) } catch { #expect(error.reason.contains(expected), "\(error.reason)") }
    }

    @Test("hostile feedback: a huge body is refused, many long details are cut, escapes become spaces")
    func hostile() throws {
        #expect(throws: DDIError.self) { try DDI.Feedback(json: [UInt8](repeating: 0x20, count: DDI.maxBody + 1)) }
        let line = String(repeating: "x", count: 700) + "\u{1b}[31m"
        let many = (0..<80).map { _ in "\"\(line.replacingOccurrences(of: "\u{1b}", with: "\\u001b"))\"" }.joined(separator: ",")
        let body = #"{"status":{"execution":"proceeding","result":{"finished":"none"},"details":["# + many + "]}}"
        let parsed = try DDI.Feedback(json: Array(body.utf8))
        #expect(parsed.details.count == DDI.maxDetails && parsed.details.allSatisfy { $0.count <= DDI.maxDetailLength && !$0.contains("\u{1b}") })
    }

    @Test("configData: SWUpdate's body without a mode merges; numbers become strings; too many or non-string attributes are refused")
    func configData() throws {
        let swupdate =
            #"{ "id": "", "time": "20261207T200109", "status": { "result": { "finished": "success" }, "execution": "closed", "details" : [ "" ] }, "data" : {  "swversion": "1.0.0","board": "otamesh", "rev": 2 } }"#
        let parsed = try DDI.ConfigData(json: Array(swupdate.utf8))
        #expect(parsed.mode == .merge && parsed.data == ["swversion": "1.0.0", "board": "otamesh", "rev": "2"])
        #expect(try DDI.ConfigData(json: Array(#"{"mode":"replace","data":{}}"#.utf8)).mode == .replace)
        #expect(throws: DDIError.self) { try DDI.ConfigData(json: Array(#"{"data":{"a":["x"]}}"#.utf8)) }
        #expect(throws: DDIError.self) { try DDI.ConfigData(json: Array(#"{"mode":"append","data":{}}"#.utf8)) }
        let lots = (0..<100).map { "\"k\($0)\":\"v\"" }.joined(separator: ",")
        #expect(throws: DDIError.self) { try DDI.ConfigData(json: Array("{\"data\":{\(lots)}}".utf8)) }
    }

    @Test("paths: the resources both clients use, and nothing else")
    func paths() {
        #expect(DDI.path("/DEFAULT/controller/v1/dev-1") == DDI.Path(tenant: "DEFAULT", controllerID: "dev-1", resource: .base))
        #expect(DDI.path("/t/controller/v1/d/configData")?.resource == .configData)
        #expect(DDI.path("/t/controller/v1/d/deploymentBase/7")?.resource == .deploymentBase(7))
        #expect(DDI.path("/t/controller/v1/d/deploymentBase/7/feedback")?.resource == .deploymentFeedback(7))
        #expect(DDI.path("/t/controller/v1/d/cancelAction/9")?.resource == .cancelAction(9))
        #expect(DDI.path("/t/controller/v1/d/cancelAction/9/feedback")?.resource == .cancelFeedback(9))
        for bad in [
            "/t/controller/v2/d", "/t/controller/v1/d/deploymentBase/0", "/t/controller/v1/d/deploymentBase/99999999999",
            "/t/controller/v1/d/deploymentBase/x", "/t/controller/v1/d e", "/t/controller/v1/", "/v1/targets/a", "/t/controller/v1/d/other",
            "/t/controller/v1/" + String(repeating: "a", count: 65),
        ] {
            #expect(DDI.path(bad) == nil, "\(bad)")
        }
    }

    @Test("credentials: TargetToken and GatewayToken, any case; anything else is none")
    func credentials() {
        #expect(DDI.credential("TargetToken abc") == .targetToken("abc"))
        #expect(DDI.credential("gatewaytoken xyz") == .gatewayToken("xyz"))
        #expect(DDI.credential("Bearer abc") == DDI.Credential.none)
        #expect(DDI.credential(nil) == DDI.Credential.none)
        #expect(DDI.credential("TargetToken") == DDI.Credential.none)
    }

    @Test("action ids are stable, positive and below 2^31 (SWUpdate reads them as a C int)")
    func actionIDs() {
        let id = DDI.actionID("r-0123456789ab", String(repeating: "ab", count: 32), "dev-1")
        #expect(id == DDI.actionID("r-0123456789ab", String(repeating: "ab", count: 32), "dev-1"))
        #expect(id != DDI.actionID("r-0123456789ab", String(repeating: "ab", count: 32), "dev-2"))
        for n in 0..<2000 {
            let value = DDI.actionID("r", "\(n)")
            #expect(value > 0 && value <= Int64(Int32.max))
        }
    }
}
