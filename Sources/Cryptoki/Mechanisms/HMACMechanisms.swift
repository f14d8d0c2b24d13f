// HMAC sign/verify: CKM_SHA_1_HMAC, CKM_SHA256_HMAC, CKM_SHA384_HMAC, CKM_SHA512_HMAC with generic secret keys,
// via CryptoCore.HMAC.
import CP11Kit
import CryptoCore

enum HMACMechanism {
    /// Generic secrets work with every HMAC; a CKK_SHAxxx_HMAC key only with its own hash.
    static func accepts(keyType: CK_KEY_TYPE, mechanism: CK_MECHANISM_TYPE) -> Bool {
        switch keyType {
        case CKK_GENERIC_SECRET: return true
        case CKK_SHA_1_HMAC: return mechanism == CKM_SHA_1_HMAC
        case CKK_SHA256_HMAC: return mechanism == CKM_SHA256_HMAC
        case CKK_SHA384_HMAC: return mechanism == CKM_SHA384_HMAC
        case CKK_SHA512_HMAC: return mechanism == CKM_SHA512_HMAC
        default: return false
        }
    }
}

final class MACOperation: @unchecked Sendable {
    let algorithm: DigestAlgorithm
    private let mac: CryptoCore.HMAC
    var multipart = false

    init(_ m: Mechanism, key: SecretBytes) throws {
        guard case .hmac(let alg)? = Mechanisms.byType[m.type]?.kind else { throw ckr(CKR_MECHANISM_INVALID) }
        try Mechanisms.requireNoParameter(m)
        algorithm = alg
        do { mac = try CryptoCore.HMAC(alg, key: key) } catch { throw ErrorMap.wrap(error, context: "HMAC init") }
    }

    var length: Int { algorithm.outputLength }

    func update(_ data: some ByteView) throws {
        do { try mac.update(data) } catch { throw ErrorMap.wrap(error, context: "HMAC update") }
    }

    func finish() throws -> [UInt8] {
        do { return try mac.finalize() } catch { throw ErrorMap.wrap(error, context: "HMAC final") }
    }

    /// CKR_SIGNATURE_LEN_RANGE unless the full MAC length; CKR_SIGNATURE_INVALID on mismatch.
    func verify(_ signature: UnsafeRawBufferPointer) throws {
        guard signature.count == length else { throw ckr(CKR_SIGNATURE_LEN_RANGE) }
        let ok: Bool
        do { ok = try mac.finalizeAndVerify(RawView(signature)) } catch { throw ErrorMap.wrap(error, context: "HMAC verify") }
        guard ok else { throw ckr(CKR_SIGNATURE_INVALID) }
    }
}
