import AsyncHTTPClient
import NIOCore

extension DeviceProbe {
    /// Runs `requests` against `address` (plain HTTP GET, no redirects, `timeout` each) and
    /// returns what they answered: the thin shell around ``classify(_:answers:)``.
    public static func fetch(_ requests: [Request], address: String, timeout: Duration = .seconds(3)) async -> Answers {
        guard !requests.isEmpty else { return [:] }
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .init(timeout), read: .init(timeout))
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        var answers: Answers = [:]
        for request in requests {
            let url = "http://\(Service.endpoint(address, request.port))\(request.path)"
            do {
                let response = try await client.execute(HTTPClientRequest(url: url), timeout: .init(timeout))
                let body = try await response.body.collect(upTo: 64 << 10)
                answers[request] = (Int(response.status.code), Array(buffer: body))
            } catch {
                answers[request] = .some(nil)
            }
        }
        try? await client.shutdown()
        return answers
    }
}
