// Message digests: CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512 (C_Digest*, C_DigestKey), via CryptoCore.
import CP11Kit
import CryptoCore

final class DigestOperation: @unchecked Sendable {
    let algorithm: DigestAlgorithm
    private let digest: CryptoCore.Digest
    /// A digest computed but not yet delivered (of C_DigestKey input too): wiped once delivered and by deinit.
    var pending: SecretBytes?
    var multipart = false

    deinit { pending?.wipe() }

    init(_ m: Mechanism) throws {
        guard case .digest(let alg)? = Mechanisms.byType[m.type]?.kind else { throw ckr(CKR_MECHANISM_INVALID) }
        try Mechanisms.requireNoParameter(m)
        algorithm = alg
        do { digest = try CryptoCore.Digest(alg) } catch { throw ErrorMap.wrap(error, context: "digest init") }
    }

    func update(_ data: some ByteView) throws {
        do { try digest.update(data) } catch { throw ErrorMap.wrap(error, context: "digest update") }
    }

    func finish() throws -> [UInt8] {
        do { return try digest.finalize() } catch { throw ErrorMap.wrap(error, context: "digest final") }
    }
}
