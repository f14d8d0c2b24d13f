// Base64 (RFC 4648 §4) and base64url (§5) without Foundation, for the cloud backends' JSON bodies, JWTs and PEM.
// One codec for public bytes and secrets alike: decoding into SecretBytes writes each byte once, into the
// secret buffer, with no intermediate array.

public enum Base64 {
    /// The alphabet a text is written in. `.either` (decode only) accepts both alphabets mixed, as AWS's
    /// JSON answers may use either.
    public enum Alphabet: Sendable { case standard, url, either }

    private static let standardTable = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlTable = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    // MARK: Encoding

    /// Appends the base64 text of `data` to `out` (`.either` writes the standard alphabet).
    public static func encode(_ data: some ByteView, into out: inout [UInt8], alphabet: Alphabet = .standard, padded: Bool = true) {
        let table = alphabet == .url ? urlTable : standardTable
        data.withUnsafeBytes { raw in
            let n = raw.count
            out.reserveCapacity(out.count + (n + 2) / 3 * 4)
            var i = 0
            while i + 3 <= n {
                let v = UInt32(raw[i]) << 16 | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2])
                out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)])
                out.append(table[Int(v >> 6 & 63)]); out.append(table[Int(v & 63)])
                i += 3
            }
            switch n - i {
            case 1:
                let v = UInt32(raw[i]) << 16
                out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)])
                if padded { out.append(contentsOf: [0x3D, 0x3D]) }
            case 2:
                let v = UInt32(raw[i]) << 16 | UInt32(raw[i + 1]) << 8
                out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)]); out.append(table[Int(v >> 6 & 63)])
                if padded { out.append(0x3D) }
            default: break
            }
        }
    }

    /// The base64 text of `data` as bytes. When `data` is secret the result is too: the caller wipes it.
    public static func encode(_ data: some ByteView, alphabet: Alphabet = .standard, padded: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        encode(data, into: &out, alphabet: alphabet, padded: padded)
        return out
    }

    public static func encodeString(_ data: some ByteView, alphabet: Alphabet = .standard, padded: Bool = true) -> String {
        String(decoding: encode(data, alphabet: alphabet, padded: padded), as: UTF8.self)
    }

    // MARK: Decoding

    /// Decodes; padding optional (at most two '=', only at the end); white space (PEM line breaks) skipped when
    /// `skipWhitespace`. nil if malformed.
    public static func decode(_ text: some ByteView, alphabet: Alphabet = .standard, skipWhitespace: Bool = false) -> [UInt8]? {
        guard let n = decodedCount(text, alphabet: alphabet, skipWhitespace: skipWhitespace) else { return nil }
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { decode(text, alphabet: alphabet, skipWhitespace: skipWhitespace, into: $0) }
        return out
    }

    public static func decode(_ text: String, alphabet: Alphabet = .standard) -> [UInt8]? {
        decode(Array(text.utf8), alphabet: alphabet)
    }

    /// Decodes straight into a fresh SecretBytes (a key's plaintext from a KMS answer). nil if malformed.
    public static func decodeSecret(_ text: some ByteView, alphabet: Alphabet = .standard, skipWhitespace: Bool = false) -> SecretBytes? {
        guard let n = decodedCount(text, alphabet: alphabet, skipWhitespace: skipWhitespace) else { return nil }
        let out = SecretBytes(count: n)
        out.withUnsafeMutableBytes { decode(text, alphabet: alphabet, skipWhitespace: skipWhitespace, into: $0) }
        return out
    }

    private static func value(_ c: UInt8, _ alphabet: Alphabet) -> UInt32? {
        switch c {
        case 0x41...0x5A: return UInt32(c - 0x41)
        case 0x61...0x7A: return UInt32(c - 0x61 + 26)
        case 0x30...0x39: return UInt32(c - 0x30 + 52)
        case UInt8(ascii: "+") where alphabet != .url: return 62
        case UInt8(ascii: "/") where alphabet != .url: return 63
        case UInt8(ascii: "-") where alphabet != .standard: return 62
        case UInt8(ascii: "_") where alphabet != .standard: return 63
        default: return nil
        }
    }

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }

    /// First pass: validates the text and gives the decoded length.
    private static func decodedCount(_ text: some ByteView, alphabet: Alphabet, skipWhitespace: Bool) -> Int? {
        text.withUnsafeBytes { raw -> Int? in
            var symbols = 0, padding = 0
            for c in raw {
                if skipWhitespace && isSpace(c) { continue }
                if c == 0x3D { padding += 1; continue }
                guard padding == 0, value(c, alphabet) != nil else { return nil }
                symbols += 1
            }
            let rest = symbols % 4
            guard rest != 1, padding <= 2, padding == 0 || (symbols + padding) % 4 == 0 else { return nil }
            return symbols / 4 * 3 + (rest == 0 ? 0 : rest - 1)
        }
    }

    /// Second pass over a text `decodedCount` accepted: writes exactly `out.count` bytes.
    private static func decode(_ text: some ByteView, alphabet: Alphabet, skipWhitespace: Bool, into out: UnsafeMutableRawBufferPointer) {
        text.withUnsafeBytes { raw in
            var acc: UInt32 = 0, bits = 0, o = 0
            for c in raw {
                if c == 0x3D || (skipWhitespace && isSpace(c)) { continue }
                guard let v = value(c, alphabet) else { return }
                acc = (acc << 6 | v) & 0xFFFFFF
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    guard o < out.count else { return }
                    out[o] = UInt8(truncatingIfNeeded: acc >> UInt32(bits))
                    o += 1
                }
            }
            acc = 0
        }
    }
}
