/// A device's configuration image as the gateway can serve it (apps.md): built from its
/// settings with its app's filesystem parameters, or why there is none.
public struct ConfigurationOffer: Sendable, Equatable {
    /// `name@version` of the app version the image is for.
    public var app: String?
    /// The `config-id` inside the image: what the device reports once it mounted it.
    public var configID: String?
    public var blob: ServedBlob?
    /// MD5 of the image (httpUpdate's `x-MD5`).
    public var md5: String?
    /// A password value is inside: served only to ``address``.
    public var holdsSecret: Bool
    public var address: String?
    /// Why the device has no image (no settings, a required value missing, a build error).
    public var problem: String?

    public init(
        app: String? = nil, configID: String? = nil, blob: ServedBlob? = nil, md5: String? = nil, holdsSecret: Bool = false, address: String? = nil,
        problem: String? = nil
    ) {
        self.app = app
        self.configID = configID
        self.blob = blob
        self.md5 = md5
        self.holdsSecret = holdsSecret
        self.address = address
        self.problem = problem
    }
}

extension DeviceRoutes {
    /// httpUpdate in filesystem mode (`x-ESP8266-mode: spiffs`, `x-ESP32-mode: spiffs`,
    /// `ESPhttpUpdate.updateFS(client, url, configID)`): the device's own configuration image,
    /// 304 when the `config-id` it reports is the current one. An image holding a password goes
    /// only to a request from the device's address (trust.md). The version header carries the
    /// configuration's id here, not the firmware's version, so it is not recorded as one.
    ///
    /// While rollouts run, a new configuration waits for theirs: a configuration plan that covers
    /// the device gives it only after its firmware and with its stage (``RolloutAnswer/hold(_:)``
    /// → 304 and the reason as its last answer).
    static func filesystemUpdate(_ request: DeviceRequest, esp: ESPUpdateHeaders, id: String, context: Context) throws(NeedRolloutAnswer) -> Outcome {
        func sighting(_ said: String, current: Bool = false) -> DeviceSighting {
            var sighting = DeviceSighting(id: id, family: esp.family, hardware: esp.chip, version: nil, address: request.clientAddress, answer: said)
            sighting.configuration = esp.version.map { (String($0.prefix(64)), current) }
            return sighting
        }
        func answer(_ status: Int, _ said: String, body: String? = nil, current: Bool = false) -> Outcome {
            let response: DeviceResponse = body.map { .text(status, $0) } ?? .empty(status)
            return .response(response, sighting: sighting(said, current: current))
        }
        guard esp.mode == "spiffs" else { return answer(304, "filesystem: mode \(esp.mode) is neither sketch nor spiffs") }
        guard let offer = context.configuration(id) else { return .needConfiguration(id) }
        if let problem = offer.problem { return answer(304, "filesystem: \(problem)") }
        guard let blob = offer.blob, let configID = offer.configID, let md5 = offer.md5 else { return answer(304, "filesystem: no image") }
        if esp.version == configID { return answer(304, "filesystem current (\(configID), \(offer.app ?? "?"))", current: true) }
        if context.rolloutsActive {
            let query = DeviceQuery(id: id, family: esp.family, hardware: esp.chip, address: request.clientAddress, filesystem: true)
            guard let (asked, told) = context.rolloutAnswer, asked.id == id, asked.filesystem else { throw NeedRolloutAnswer(query: query) }
            if case .hold(let why) = told { return answer(304, "filesystem held: \(why)") }
        }
        if offer.holdsSecret, offer.address != request.clientAddress {
            let pinned = offer.address ?? "no address yet"
            return answer(
                403,
                "filesystem refused: \(configID) holds a password and goes only to \(pinned), not \(request.clientAddress) (otamesh device config set \(id) --address IP)",
                body: "configuration withheld: it holds a password and goes only to the device's address\n")
        }
        var response = FileServing.respond(to: request, blob: blob, extra: [("Content-Disposition", "attachment; filename=\"config.bin\""), ("x-MD5", md5)])
        response.device = id
        return .response(response, sighting: sighting("offered filesystem \(configID) (\(offer.app ?? "?"))"))
    }
}
