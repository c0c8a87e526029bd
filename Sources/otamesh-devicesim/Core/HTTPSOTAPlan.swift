/// The Range headers ESP-IDF `esp_https_ota` sends with `partial_http_download` (newest
/// `components/esp_https_ota/src/esp_https_ota.c`, research notes §3). Pure.
enum HTTPSOTAPlan {
    /// `DEFAULT_REQUEST_SIZE (64 * 1024)`.
    static let defaultRequestSize = 64 * 1024
    /// `IMAGE_HEADER_SIZE (1024)`: `read_header` wants this many bytes of the first response
    /// before anything is written; resumption needs at least this many bytes written.
    static let imageHeaderSize = 1024

    /// `esp_https_ota_begin`, after the length is known:
    /// ```c
    /// range_end = (image_length > max + range_start) ? (range_start + max - 1) : image_length;
    /// if ((range_end - range_start) < image_length) "bytes=%d-%d"
    /// ```
    /// nil = no Range header (the whole image fits one request). Note the non-final branch ends
    /// at `image_length`, one past the last byte (servers clamp).
    static func firstRange(imageLength: Int, rangeStart: Int, maxRequestSize: Int) -> String? {
        let rangeEnd = imageLength > maxRequestSize + rangeStart ? rangeStart + maxRequestSize - 1 : imageLength
        guard rangeEnd - rangeStart < imageLength else { return nil }
        return "bytes=\(rangeStart)-\(rangeEnd)"
    }

    /// `esp_https_ota_perform`, once a response is fully read and bytes remain:
    /// `"bytes=%d-%d"` while more than one request's worth remains, else the open-ended
    /// `"bytes=%d-"`.
    static func nextRange(imageLength: Int, written: Int, maxRequestSize: Int) -> String {
        if imageLength - written > maxRequestSize {
            return "bytes=\(written)-\(written + maxRequestSize - 1)"
        }
        return "bytes=\(written)-"
    }

    /// Every Range header of an uninterrupted download, in order (for self-tests and docs).
    static func allRanges(imageLength: Int, maxRequestSize: Int, resumeAt: Int = 0) -> [String?] {
        var out: [String?] = [firstRange(imageLength: imageLength, rangeStart: resumeAt, maxRequestSize: maxRequestSize)]
        var written = resumeAt
        // The first response delivers up to range_end (inclusive) or the rest of the image.
        let firstEnd = imageLength > maxRequestSize + resumeAt ? resumeAt + maxRequestSize : imageLength
        written = firstEnd
        while written < imageLength {
            out.append(nextRange(imageLength: imageLength, written: written, maxRequestSize: maxRequestSize))
            written = min(imageLength, written + maxRequestSize)
        }
        return out
    }

    /// The offset an `ota_resumption` app restarts from: the end of the last request that was
    /// completely written (what this emulator persists as `ota_image_bytes_written`); below
    /// `IMAGE_HEADER_SIZE` the IDF starts from 0.
    static func resumeOffset(lastCompleteRequestEnd: Int) -> Int {
        lastCompleteRequestEnd >= imageHeaderSize ? lastCompleteRequestEnd : 0
    }
}
