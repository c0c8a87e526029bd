import CLZMA

/// Why an xz stream could not be decoded.
public enum XZError: Error, Sendable, Equatable, CustomStringConvertible {
    /// liblzma refused to start (out of memory or a bad option).
    case initFailed(code: UInt32)
    /// The data is not an xz stream.
    case notXZ
    /// The stream is damaged (bad header, bad check, unsupported filter…).
    case corrupt(String)
    /// The input ended before the stream did.
    case truncated
    /// Decoding would produce more than the caller allowed.
    case outputLimitExceeded(limit: Int)
    /// The stream needs more memory than the configured limit.
    case memoryLimitExceeded(limit: UInt64)

    public var description: String {
        switch self {
        case .initFailed(let code): "liblzma decoder could not start (lzma_ret \(code))"
        case .notXZ: "not an xz stream (bad magic)"
        case .corrupt(let why): "corrupt xz stream: \(why)"
        case .truncated: "xz stream is truncated"
        case .outputLimitExceeded(let limit): "xz stream decodes to more than \(limit) bytes"
        case .memoryLimitExceeded(let limit): "xz stream needs more than \(limit) bytes of decoder memory"
        }
    }
}

/// A streaming xz decoder over liblzma (the library behind the `xz` CLI).
///
/// Feed compressed chunks with ``decode(_:finish:output:)``; decoded bytes arrive through the
/// `output` closure in buffer-sized pieces. Multi-block streams decode on several threads,
/// as `xz -T0 -d` does. Output beyond `outputLimit` is an error, so a hostile payload
/// cannot grow without bound.
public final class XZDecoder {
    private var stream: lzma_stream
    private var outputBuffer: [UInt8]
    private let outputLimit: Int
    private let memoryLimit: UInt64
    private(set) public var totalOut = 0
    private var finished = false

    /// - Parameters:
    ///   - outputLimit: most bytes the stream may decode to.
    ///   - memoryLimit: most decoder memory liblzma may use (dictionary + threads).
    ///   - threads: decoder threads; 0 = one per core.
    public init(outputLimit: Int = Int.max, memoryLimit: UInt64 = 512 << 20, threads: Int = 0) throws(XZError) {
        self.stream = lzma_stream()
        // 64 KiB: decoded bytes are copied out of the dictionary into this buffer; a buffer
        // that stays in cache keeps that copy cheap (1 MiB measured ~5 % slower).
        self.outputBuffer = [UInt8](repeating: 0, count: 64 << 10)
        self.outputLimit = outputLimit
        self.memoryLimit = memoryLimit
        let flags: UInt32 = 0x08  // LZMA_CONCATENATED (a UINT32_C macro Swift cannot import)
        let threadCount = threads > 0 ? threads : max(1, Self.coreCount())
        let ret: lzma_ret
        if threadCount == 1 {
            ret = lzma_stream_decoder(&stream, memoryLimit, flags)
        } else {
            var options = lzma_mt()
            options.flags = flags
            options.threads = UInt32(threadCount)
            options.memlimit_threading = memoryLimit
            options.memlimit_stop = memoryLimit
            ret = lzma_stream_decoder_mt(&stream, &options)
        }
        guard ret == LZMA_OK else { throw .initFailed(code: ret.rawValue) }
    }

    deinit {
        lzma_end(&stream)
    }

    /// Decodes one chunk. Pass `finish: true` with the last chunk (it may be empty); the
    /// call then fails with ``XZError/truncated`` if the stream is incomplete.
    public func decode(
        _ input: UnsafeRawBufferPointer, finish: Bool,
        output: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard !finished else {
            if input.isEmpty { return }
            throw XZError.corrupt("data after the end of the stream")
        }
        stream.next_in = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.avail_in = input.count
        let action = finish ? LZMA_FINISH : LZMA_RUN
        while true {
            let (ret, produced) = outputBuffer.withUnsafeMutableBufferPointer { buffer -> (lzma_ret, Int) in
                stream.next_out = buffer.baseAddress
                stream.avail_out = buffer.count
                let ret = lzma_code(&stream, action)
                return (ret, buffer.count - stream.avail_out)
            }
            if produced > 0 {
                totalOut += produced
                guard totalOut <= outputLimit else { throw XZError.outputLimitExceeded(limit: outputLimit) }
                try outputBuffer.withUnsafeBytes { try output(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
            }
            switch ret {
            case LZMA_OK:
                if stream.avail_in == 0 && stream.avail_out > 0 && !finish { return }
            case LZMA_STREAM_END:
                finished = true
                guard stream.avail_in == 0 else { throw XZError.corrupt("data after the end of the stream") }
                return
            case LZMA_BUF_ERROR:
                // No progress possible: with LZMA_FINISH that means the input ended early.
                throw XZError.truncated
            case LZMA_FORMAT_ERROR:
                throw XZError.notXZ
            case LZMA_MEMLIMIT_ERROR, LZMA_MEM_ERROR:
                throw XZError.memoryLimitExceeded(limit: memoryLimit)
            case LZMA_DATA_ERROR:
                throw XZError.corrupt("compressed data is damaged")
            case LZMA_OPTIONS_ERROR:
                throw XZError.corrupt("unsupported options or filter")
            case LZMA_UNSUPPORTED_CHECK:
                throw XZError.corrupt("unsupported integrity check")
            default:
                throw XZError.corrupt("lzma_ret \(ret.rawValue)")
            }
        }
    }

    /// True once the end of the xz stream was decoded.
    public var isFinished: Bool { finished }

    /// Decodes a whole in-memory stream.
    public static func decompress(_ input: ArraySlice<UInt8>, outputLimit: Int) throws(XZError) -> [UInt8] {
        let decoder = try XZDecoder(outputLimit: outputLimit)
        var out: [UInt8] = []
        do {
            try input.withUnsafeBytes { raw in
                try decoder.decode(raw, finish: true) { out.append(contentsOf: $0) }
            }
        } catch let error as XZError {
            throw error
        } catch {
            throw .corrupt(String(describing: error))
        }
        return out
    }

    private static func coreCount() -> Int {
        Int(lzma_cputhreads())
    }
}
