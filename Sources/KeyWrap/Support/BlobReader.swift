// Reads the one backend blob frame (BlobWriter.swift describes it).
import CryptoCore

/// Reads a blob written by `BlobWriter`: every accessor answers nil past the frame, so a short or edited blob
/// is refused field by field without arithmetic on its lengths going wrong.
struct BlobReader {
    let blob: [UInt8]
    /// Where the frame ends (the mac, if any, starts).
    let frameEnd: Int
    private(set) var offset = 1

    /// nil unless `blob` starts with `version` and has room for the mac.
    init?(_ blob: [UInt8], version: UInt8, macLength: Int = 0) {
        guard blob.count > 1 + macLength, blob[0] == version else { return nil }
        self.blob = blob
        self.frameEnd = blob.count - macLength
    }

    mutating func byte() -> UInt8? {
        guard offset < frameEnd else { return nil }
        defer { offset += 1 }
        return blob[offset]
    }

    /// The next `u16 length || field`; nil when it is empty or runs past the frame.
    mutating func field() -> ArraySlice<UInt8>? {
        guard offset + 2 <= frameEnd else { return nil }
        let n = Int(blob[offset]) << 8 | Int(blob[offset + 1])
        guard n > 0, offset + 2 + n <= frameEnd else { return nil }
        defer { offset += 2 + n }
        return blob[(offset + 2)..<(offset + 2 + n)]
    }

    /// The next field as UTF-8 text.
    mutating func textField() -> String? { field().flatMap { String(validating: Array($0), as: UTF8.self) } }

    /// Every frame byte has been read.
    var isAtEnd: Bool { offset == frameEnd }

    /// The frame bytes read so far (what a header-bound AAD covers).
    var prefixRead: ArraySlice<UInt8> { blob[0..<offset] }

    var frame: ArraySlice<UInt8> { blob[0..<frameEnd] }
    var mac: ArraySlice<UInt8> { blob[frameEnd...] }

    /// Whether the mac after the frame is the one `rootKey` gives (constant time).
    func macVerifies(label: [UInt8], rootKey: SecretBytes, context: WrapContext) throws -> Bool {
        constantTimeEquals(try BlobMAC.compute(label: label, rootKey: rootKey, context: context, frame: frame), mac)
    }
}
