import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Internal helpers: OpenSSL error text, pre-fetched algorithm objects (fetched once; shared read-only,
/// which OpenSSL documents as thread-safe), length conversions without traps.
enum OSSL {
    /// Drains the OpenSSL error queue and returns a message naming `function` and the first reason.
    /// OpenSSL reason strings never contain data bytes.
    static func error(_ function: String) -> CryptoError {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return .openSSL(function) }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buf, buf.count)
        let text = buf.withUnsafeBufferPointer { p in
            String(decoding: p.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return .openSSL("\(function): \(text)")
    }

    /// Clears the error queue (after an expected failure such as a tag mismatch).
    static func clear() { ERR_clear_error() }

    static func int32(_ n: Int) throws -> Int32 {
        guard n >= 0, n <= Int(Int32.max) else { throw CryptoError.lengthOverflow }
        return Int32(n)
    }

    static func add(_ a: Int, _ b: Int) throws -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        guard !o else { throw CryptoError.lengthOverflow }
        return r
    }

    static func mul(_ a: Int, _ b: Int) throws -> Int {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        guard !o else { throw CryptoError.lengthOverflow }
        return r
    }

    /// Immortal C strings for OSSL_PARAM keys and values: OSSL_PARAM stores the pointer, so a temporary
    /// bridged from a Swift String would dangle by the time OpenSSL reads it.
    nonisolated(unsafe) static let cStrings: [String: UnsafeMutablePointer<CChar>] = {
        var t: [String: UnsafeMutablePointer<CChar>] = [:]
        for s in ["digest", "key", "salt", "info", "SHA1", "SHA2-224", "SHA2-256", "SHA2-384", "SHA2-512", "SHA256"] {
            if let p = strdup(s) { t[s] = p }
        }
        return t
    }()

    static func cString(_ s: String) throws -> UnsafeMutablePointer<CChar> {
        guard let p = cStrings[s] else { throw CryptoError.openSSL("internal: no C string for \(s)") }
        return p
    }

    // MARK: fetched algorithms

    nonisolated(unsafe) static let ciphers: [String: OpaquePointer] = {
        var table: [String: OpaquePointer] = [:]
        for bits in [128, 192, 256] {
            for mode in ["ECB", "CBC", "CTR", "GCM", "WRAP", "WRAP-PAD"] {
                let name = "AES-\(bits)-\(mode)"
                if let c = EVP_CIPHER_fetch(nil, name, nil) { table[name] = c }
            }
        }
        ERR_clear_error()
        return table
    }()

    static func cipher(_ mode: String, keyLength: Int) throws -> OpaquePointer {
        guard keyLength == 16 || keyLength == 24 || keyLength == 32 else {
            throw CryptoError.invalidKeyLength(keyLength)
        }
        let name = "AES-\(keyLength * 8)-\(mode)"
        guard let c = ciphers[name] else { throw CryptoError.openSSL("EVP_CIPHER_fetch \(name) unavailable") }
        return c
    }

    static func digestName(_ a: DigestAlgorithm) -> String {
        switch a {
        case .sha1: return "SHA1"
        case .sha224: return "SHA2-224"
        case .sha256: return "SHA2-256"
        case .sha384: return "SHA2-384"
        case .sha512: return "SHA2-512"
        }
    }

    nonisolated(unsafe) static let digests: [DigestAlgorithm: OpaquePointer] = {
        var table: [DigestAlgorithm: OpaquePointer] = [:]
        for a in DigestAlgorithm.allCases {
            if let md = EVP_MD_fetch(nil, digestName(a), nil) { table[a] = md }
        }
        ERR_clear_error()
        return table
    }()

    static func digest(_ a: DigestAlgorithm) throws -> OpaquePointer {
        guard let md = digests[a] else { throw CryptoError.openSSL("EVP_MD_fetch \(digestName(a)) unavailable") }
        return md
    }

    nonisolated(unsafe) static let hmac: OpaquePointer? = {
        let m = EVP_MAC_fetch(nil, "HMAC", nil)
        ERR_clear_error()
        return m
    }()

    nonisolated(unsafe) static let hkdf: OpaquePointer? = {
        let k = EVP_KDF_fetch(nil, "HKDF", nil)
        ERR_clear_error()
        return k
    }()
}

extension ByteView {
    /// Base pointer typed as bytes; never nil (a 1-byte dummy is used for empty input) so OpenSSL calls that
    /// reject NULL accept zero-length input.
    @inline(__always)
    func withBytePointer<R>(_ body: (UnsafePointer<UInt8>, Int) throws -> R) rethrows -> R {
        try withUnsafeBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 {
                return try body(base.assumingMemoryBound(to: UInt8.self), raw.count)
            }
            var dummy: UInt8 = 0
            return try withUnsafePointer(to: &dummy) { try body($0, 0) }
        }
    }
}
