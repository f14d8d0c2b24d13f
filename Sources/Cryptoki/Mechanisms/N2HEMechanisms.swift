// The TensorGuard N2HE vendor mechanisms (DESIGN §2): CKM_TG_N2HE_KEY_GEN, CKM_TG_N2HE_LWE1, CKM_TG_N2HE_LWE2.
// Plaintext: k little-endian int64 (8k bytes); ciphertext: one LWE1/LWE2 batch ciphertext. Multi-part buffers
// input until the final call (the header carries k). All arithmetic is the N2HE library's.
import CP11Kit
import CryptoCore
import N2HE

enum N2HEMechanism {
    /// A fresh ternary key of dimension n from the CSPRNG.
    static func generate(_ params: N2HEParameters) throws -> SecretBytes {
        do {
            let key = try N2HESecretKey.generate(n: params.n)
            return key.withRawRepresentation { SecretBytes(copying: RawView($0)) }
        } catch {
            throw ErrorMap.wrap(error, context: "N2HE key generation")
        }
    }
}

/// What a C_Decrypt under an N2HE key must pass before any arithmetic (docs/n2he.md, "Decryption rules"): the
/// key's rule, and the token's ledger of spent seeds and audit, reached through closures so that the operation
/// knows nothing of sessions or stores.
struct N2HEDecryptGuard {
    let rule: N2HEDecryptRule
    /// Most ciphertexts in one seeded sum (`N2HEParameters.maximumSeededSumTerms`).
    let maximumSumTerms: Int
    /// Marks the seed digests spent, all or none; false when one was spent before.
    let spend: ([[UInt8]]) throws -> Bool
    /// Logs and audits a refusal; returns the error to throw (CKR_ENCRYPTED_DATA_INVALID).
    let refuse: (String) -> CKRError
    /// Before a `raw` decryption of that many rows: audit, `max_decrypt_calls_per_hour`.
    let admitRaw: (Int) throws -> Void

    /// The 16-byte digest recorded for a seed: of the PCG64 stream it selects, not of its bytes (many seeds select
    /// one stream, so one A), as a SHA-256 prefix.
    static func digest(_ seed: [UInt8]) throws -> [UInt8] {
        do { return Array(try CryptoCore.Digest.hash(.sha256, N2HEMatrixExpansion.streamIdentity(seed: seed)).prefix(16)) } catch {
            throw ErrorMap.wrap(error, context: "seed digest")
        }
    }
}

final class N2HECipherOperation: CipherOperation {
    let cipher: N2HECipher
    let format: N2HECiphertextFormat
    let direction: CipherDirection
    /// `n2he.threads` of the configuration; used for calls of at least `parallelMinimumEntries` matrix entries.
    let threads: Int
    /// Decryption only.
    let decryptGuard: N2HEDecryptGuard?
    /// Multi-part input (plaintext when encrypting), grown by `secureAppend` and wiped by deinit.
    private var buffered: [UInt8] = []

    var outputIsSecret: Bool { direction == .decrypt }

    /// Below this many matrix entries (k·n) a call runs on the caller's thread: creating threads would cost more
    /// than it saves (2^20 entries take about 0.3 ms on one core).
    static let parallelMinimumEntries = 1 << 20

    init(key value: SecretBytes, parameters: N2HEParameters, mechanism: Mechanism, direction: CipherDirection,
         threads: Int = 1, decryptGuard: N2HEDecryptGuard? = nil) throws {
        guard direction == .encrypt || decryptGuard != nil else { throw ckr(CKR_GENERAL_ERROR) }
        self.decryptGuard = decryptGuard
        guard case .n2heCipher(let f)? = Mechanisms.byType[mechanism.type]?.kind else { throw ckr(CKR_MECHANISM_INVALID) }
        try Mechanisms.requireNoParameter(mechanism)
        do {
            let key = try value.withUnsafeBytes { try N2HESecretKey(rawRepresentation: $0, expectedDimension: parameters.n) }
            cipher = try N2HECipher(key: key, parameters: parameters)
        } catch {
            throw ErrorMap.wrap(error, context: "N2HE key")
        }
        format = f
        self.direction = direction
        self.threads = threads
    }

    /// Threads for a call on `k` samples.
    private func threads(samples k: Int) -> Int {
        threads > 1 && k.multipliedReportingOverflow(by: cipher.parameters.n).partialValue >= Self.parallelMinimumEntries
            ? threads : 1
    }

    private func encrypt(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        try cipher.encrypt(plaintext: input, format: format, into: output, threads: threads(samples: input.count / 8))
    }

    private func decrypt(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let bytes = try decryptLength(input)
        guard output.count >= bytes else { throw N2HEError.outputBufferTooSmall(required: bytes, available: output.count) }
        let smudging = try authorise(input, rows: bytes / 8)
        return try cipher.decrypt(ciphertext: input, into: output, threads: threads(samples: bytes / 8), smudging: smudging)
    }

    /// The mechanism fixes the layout (LWE1 reads LWE1, LWE2 reads LWE2 and seeded sums), then the key's rule
    /// decides: `seeded-once` spends the seeds (refusing LWE1, a repeated seed, a sum over its limit) and smudges;
    /// `raw` is admitted (audited, rate-limited). Returns whether to smudge. Runs after the header was validated.
    private func authorise(_ input: UnsafeRawBufferPointer, rows: Int) throws -> Bool {
        guard let g = decryptGuard else { throw ckr(CKR_GENERAL_ERROR) }
        guard let layout = N2HECiphertextLayout(magicOf: input) else { throw ckr(CKR_ENCRYPTED_DATA_INVALID) }
        switch (format, layout) {
        case (.lwe1, .lwe1), (.lwe2, .lwe2), (.lwe2, .seededSum): break
        default: throw ckr(CKR_ENCRYPTED_DATA_INVALID)
        }
        switch g.rule {
        case .raw:
            try g.admitRaw(rows)
            return false
        case .seededOnce:
            let seeds: [[UInt8]]
            switch layout {
            case .lwe1:
                throw g.refuse("LWE1 (caller-chosen A) under a seeded-once key")
            case .lwe2:
                seeds = [Array(UnsafeRawBufferPointer(rebasing: input[13..<45]))]
            case .seededSum:
                do { seeds = try N2HESeededSum(parsing: input, expectedDimension: cipher.parameters.n).seeds } catch {
                    throw ErrorMap.n2he(error, direction: .decrypt)
                }
                guard seeds.count <= g.maximumSumTerms else {
                    throw g.refuse("seeded sum of \(seeds.count) ciphertexts exceeds \(g.maximumSumTerms) for these parameters")
                }
            }
            let digests = try seeds.map(N2HEDecryptGuard.digest)
            guard Set(digests).count == digests.count else { throw g.refuse("seeded sum names a seed (or a seed of the same stream) twice") }
            guard try g.spend(digests) else { throw g.refuse("seed already decrypted under this key (seeded-once)") }
            return true
        }
    }

    deinit { secureZero(&buffered) }

    func singleOutputLength(input: UnsafeRawBufferPointer) throws -> Int? {
        direction == .encrypt ? try singleOutputLength(inputLength: input.count) : try decryptLength(input)
    }

    func singleOutputLength(inputLength: Int) throws -> Int? {
        do {
            return try cipher.ciphertextByteCount(format: format, plaintextByteCount: inputLength)
        } catch {
            throw ErrorMap.n2he(error, direction: direction)
        }
    }

    /// Decrypt length from the ciphertext header (validated), without decrypting.
    func decryptLength(_ input: UnsafeRawBufferPointer) throws -> Int {
        do { return try cipher.plaintextByteCount(ciphertext: input) } catch { throw ErrorMap.n2he(error, direction: .decrypt) }
    }

    func single(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        do {
            switch direction {
            case .encrypt:
                let n = try cipher.ciphertextByteCount(format: format, plaintextByteCount: input.count)
                var out = [UInt8](repeating: 0, count: n)
                let written = try out.withUnsafeMutableBytes { try encrypt(input, into: $0) }
                if written < out.count { out.removeLast(out.count - written) }
                return out
            case .decrypt:
                let n = try cipher.plaintextByteCount(ciphertext: input)
                var out = [UInt8](repeating: 0, count: n)
                let written = try out.withUnsafeMutableBytes { try decrypt(input, into: $0) }
                if written < out.count { out.removeLast(out.count - written) }
                return out
            }
        } catch let e as CKRError {
            throw e
        } catch {
            throw ErrorMap.n2he(error, direction: direction)
        }
    }

    /// Writes straight into the caller's buffer (no intermediate copy of a large ciphertext).
    func single(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int? {
        do {
            switch direction {
            case .encrypt: return try encrypt(input, into: output)
            case .decrypt: return try decrypt(input, into: output)
            }
        } catch let e as CKRError {
            throw e
        } catch {
            throw ErrorMap.n2he(error, direction: direction)
        }
    }

    func updateOutputLength(inputLength: Int) throws -> Int {
        guard inputLength <= Limits.maxBufferedInput - buffered.count else { throw ckr(direction.lengthError) }
        return 0
    }

    func update(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard input.count <= Limits.maxBufferedInput - buffered.count else { throw ckr(direction.lengthError) }
        secureAppend(&buffered, contentsOf: input)
        return []
    }

    func finalOutputLength() throws -> Int? {
        try buffered.withUnsafeBytes { b in
            direction == .encrypt ? try singleOutputLength(inputLength: b.count) : try decryptLength(b)
        }
    }

    func final() throws -> [UInt8] {
        try buffered.withUnsafeBytes { try single($0) }
    }
}
