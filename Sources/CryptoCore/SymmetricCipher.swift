import COpenSSL

/// A streaming AES operation (wraps one `EVP_CIPHER_CTX`, freed in deinit). Not thread-safe: one
/// instance belongs to one PKCS#11 operation. After `finish()` or any thrown error the context is dead
/// (`CryptoError.invalidState`).
///
/// Semantics per mode:
/// - `.ecb`, `.cbc`: no padding; total input must be a multiple of 16 (checked at `finish`, error
///   `.invalidInputLength`). Output is produced block by block.
/// - `.cbcPad`: PKCS#7 padding. Decrypt holds back the last block until `finish` (bad padding →
///   `.invalidPadding`; total length not a positive multiple of 16 → `.invalidInputLength`).
/// - `.ctr`: the 16-byte IV is the initial counter block (big-endian 128-bit increment). Output length ==
///   input length.
/// - `.gcm`: IV 1...128 bytes (OpenSSL's limit), tag 4...16 bytes. Encrypt streams ciphertext; `finish`
///   returns the tag. Decrypt buffers everything and returns the plaintext only from `finish`, after the tag
///   (the last `tagLength` bytes of the whole input) verified — no unauthenticated plaintext is ever released
///   (`.authenticationFailed` otherwise).
///
/// Output lengths are exact and predictable (the block buffering is done here, OpenSSL never buffers), so
/// PKCS#11 size queries can call `updateOutputLength` / `finishOutputLength` before doing the work.
public final class SymmetricCipher {
    public enum Direction: Sendable, Equatable { case encrypt, decrypt }

    public enum Mode: Sendable, Equatable {
        case ecb
        /// `iv`: 16 bytes.
        case cbc(iv: [UInt8])
        /// `iv`: 16 bytes.
        case cbcPad(iv: [UInt8])
        /// `counterBlock`: 16 bytes, the first counter block.
        case ctr(counterBlock: [UInt8])
        /// `iv` 1...128 bytes, `tagLength` 4...16 bytes.
        case gcm(iv: [UInt8], aad: [UInt8], tagLength: Int)
    }

    private enum Kind { case block, blockPad, stream, gcm }

    public let mode: Mode
    public let direction: Direction
    private let kind: Kind
    private let tagLength: Int
    private let ctx: OpaquePointer
    /// Partial block (block modes), held-back last block (CBC-PAD decrypt) or all ciphertext (GCM decrypt).
    private var pending: [UInt8] = []
    private var alive = true

    /// - Parameter key: 16, 24 or 32 bytes (AES-128/192/256).
    public init(mode: Mode, direction: Direction, key: SecretBytes) throws {
        self.mode = mode
        self.direction = direction
        let enc: Int32 = direction == .encrypt ? 1 : 0
        let modeName: String
        var iv: [UInt8] = []
        var aad: [UInt8] = []
        var tag = 0
        switch mode {
        case .ecb:
            modeName = "ECB"; kind = .block
        case .cbc(let v):
            modeName = "CBC"; kind = .block; iv = v
            guard v.count == 16 else { throw CryptoError.invalidIVLength(v.count) }
        case .cbcPad(let v):
            modeName = "CBC"; kind = .blockPad; iv = v
            guard v.count == 16 else { throw CryptoError.invalidIVLength(v.count) }
        case .ctr(let v):
            modeName = "CTR"; kind = .stream; iv = v
            guard v.count == 16 else { throw CryptoError.invalidIVLength(v.count) }
        case .gcm(let v, let a, let t):
            modeName = "GCM"; kind = .gcm; iv = v; aad = a; tag = t
            guard (1...128).contains(v.count) else { throw CryptoError.invalidIVLength(v.count) }
            guard (4...16).contains(t) else { throw CryptoError.invalidTagLength(t) }
        }
        tagLength = tag
        let cipher = try OSSL.cipher(modeName, keyLength: key.count)
        guard let c = EVP_CIPHER_CTX_new() else { throw OSSL.error("EVP_CIPHER_CTX_new") }
        ctx = c
        // From here on every stored property is initialised: a throw runs deinit, which frees ctx.
        if kind == .gcm {
            guard EVP_CipherInit_ex2(ctx, cipher, nil, nil, enc, nil) == 1 else { throw OSSL.error("EVP_CipherInit_ex2") }
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, Int32(iv.count), nil) == 1 else {
                throw OSSL.error("EVP_CTRL_AEAD_SET_IVLEN")
            }
            try key.withBytePointer { k, _ in
                try iv.withBytePointer { i, _ in
                    guard EVP_CipherInit_ex2(ctx, nil, k, i, enc, nil) == 1 else { throw OSSL.error("EVP_CipherInit_ex2") }
                }
            }
            if !aad.isEmpty { _ = try run(aad, into: nil) }
        } else {
            try key.withBytePointer { k, _ in
                try iv.withBytePointer { i, _ in
                    guard EVP_CipherInit_ex2(ctx, cipher, k, iv.isEmpty ? nil : i, enc, nil) == 1 else {
                        throw OSSL.error("EVP_CipherInit_ex2")
                    }
                }
            }
            guard EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 else { throw OSSL.error("EVP_CIPHER_CTX_set_padding") }
        }
    }

    deinit {
        EVP_CIPHER_CTX_free(ctx)
        secureZero(&pending)
    }

    /// Runs EVP_CipherUpdate over `input` in chunks; returns the output (or nothing for AAD when `into` is nil).
    private func run(_ input: some ByteView, into out: UnsafeMutablePointer<UInt8>?) throws -> Int {
        var produced = 0
        try input.withBytePointer { p, n in
            var offset = 0
            let chunkMax = 1 << 30
            while offset < n {
                let len = min(chunkMax, n - offset)
                var outl: Int32 = 0
                guard EVP_CipherUpdate(ctx, out.map { $0 + produced }, &outl, p + offset, try OSSL.int32(len)) == 1 else {
                    throw OSSL.error("EVP_CipherUpdate")
                }
                produced = try OSSL.add(produced, Int(outl))
                offset += len
            }
        }
        return produced
    }

    private func process(_ input: some ByteView) throws -> [UInt8] {
        guard input.count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: input.count)
        let n = try out.withUnsafeMutableBytes { buf -> Int in
            guard let base = buf.baseAddress else { return 0 }
            return try run(input, into: base.assumingMemoryBound(to: UInt8.self))
        }
        guard n == input.count else { throw CryptoError.openSSL("EVP_CipherUpdate: unexpected output length") }
        return out
    }

    /// How many of `total` buffered+new bytes are processed now in the block modes.
    private func blockProcessLength(total: Int) -> Int {
        if kind == .blockPad && direction == .decrypt {
            return total == 0 ? 0 : ((total - 1) / 16) * 16
        }
        return total - total % 16
    }

    /// Processes more input, returning whatever output is ready.
    public func update(_ input: some ByteView) throws -> [UInt8] {
        guard alive else { throw CryptoError.invalidState }
        do {
            switch kind {
            case .block, .blockPad:
                let total = try OSSL.add(pending.count, input.count)
                let now = blockProcessLength(total: total)
                if now == 0 {
                    input.withUnsafeBytes { secureAppend(&pending, contentsOf: $0) }
                    return []
                }
                var combined = pending
                combined.reserveCapacity(total)
                input.withUnsafeBytes { combined.append(contentsOf: $0) }
                defer { secureZero(&combined) }
                let out = try process(combined[0..<now])
                secureZero(&pending)
                pending = Array(combined[now...])
                return out
            case .stream:
                return try process(input)
            case .gcm:
                if direction == .encrypt { return try process(input) }
                _ = try OSSL.add(pending.count, input.count)
                input.withUnsafeBytes { secureAppend(&pending, contentsOf: $0) }
                return []
            }
        } catch {
            alive = false
            throw error
        }
    }

    /// Ends the operation and returns the remaining output (GCM encrypt: the tag).
    public func finish() throws -> [UInt8] {
        guard alive else { throw CryptoError.invalidState }
        alive = false
        switch kind {
        case .block:
            guard pending.isEmpty else { throw CryptoError.invalidInputLength(pending.count) }
            return []
        case .stream:
            return []
        case .blockPad:
            if direction == .encrypt {
                let pad = 16 - pending.count
                var block = pending + [UInt8](repeating: UInt8(truncatingIfNeeded: pad), count: pad)
                defer { secureZero(&block) }
                return try process(block)
            }
            guard pending.count == 16 else { throw CryptoError.invalidInputLength(pending.count) }
            var plain = try process(pending)
            defer { secureZero(&plain) }   // the last block, padding included
            // Padding check without data-dependent branches over the block contents.
            let p = Int(plain[15])
            var bad = (p == 0 || p > 16) ? 1 : 0
            for i in 0..<16 {
                let inPad = i >= 16 - p ? 1 : 0
                bad |= inPad & (Int(plain[i] ^ UInt8(truncatingIfNeeded: p)) != 0 ? 1 : 0)
            }
            guard bad == 0 else { throw CryptoError.invalidPadding }
            return Array(plain[0..<(16 - p)])
        case .gcm:
            if direction == .encrypt {
                var outl: Int32 = 0
                var scratch = [UInt8](repeating: 0, count: 16)
                guard EVP_CipherFinal_ex(ctx, &scratch, &outl) == 1 else { throw OSSL.error("EVP_CipherFinal_ex") }
                var tag = [UInt8](repeating: 0, count: tagLength)
                guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, Int32(tagLength), &tag) == 1 else {
                    throw OSSL.error("EVP_CTRL_AEAD_GET_TAG")
                }
                return tag
            }
            guard pending.count >= tagLength else { throw CryptoError.invalidInputLength(pending.count) }
            let ctLen = pending.count - tagLength
            var plain = try process(pending[0..<ctLen])
            var tag = Array(pending[ctLen...])
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32(tagLength), &tag) == 1 else {
                secureZero(&plain)
                throw OSSL.error("EVP_CTRL_AEAD_SET_TAG")
            }
            var outl: Int32 = 0
            var scratch = [UInt8](repeating: 0, count: 16)
            guard EVP_CipherFinal_ex(ctx, &scratch, &outl) == 1 else {
                OSSL.clear()
                secureZero(&plain)
                throw CryptoError.authenticationFailed
            }
            return plain
        }
    }

    /// Exact number of bytes the next `update` with `inputLength` bytes will return, given what is
    /// buffered now. `nil` on arithmetic overflow, a negative length, or a finished context.
    public func updateOutputLength(inputLength: Int) -> Int? {
        guard alive, inputLength >= 0 else { return nil }
        switch kind {
        case .block, .blockPad:
            let (total, o) = pending.count.addingReportingOverflow(inputLength)
            return o ? nil : blockProcessLength(total: total)
        case .stream:
            return inputLength
        case .gcm:
            // Decryption releases nothing before the tag is checked, but a length query answers the bound
            // (everything buffered so far plus this input): callers that size their buffer from it (PyKCS11)
            // must not get 0, which they turn into a NULL buffer and so into another length query.
            if direction == .encrypt { return inputLength }
            let (total, o) = pending.count.addingReportingOverflow(inputLength)
            return o ? nil : total
        }
    }

    /// What `finish()` will return now: exact, except CBC-PAD decrypt where it is the upper bound 15
    /// (padding not yet removed). 0 for a finished context.
    public func finishOutputLength() -> Int {
        guard alive else { return 0 }
        switch kind {
        case .block, .stream: return 0
        case .blockPad: return direction == .encrypt ? 16 : max(0, pending.count - 1)
        case .gcm: return direction == .encrypt ? tagLength : max(0, pending.count - tagLength)
        }
    }

    /// Output of a single-part operation (PKCS#11 C_Encrypt / C_Decrypt size query). Exact for every mode
    /// except CBC-PAD decrypt (upper bound: `inputLength - 1`). `nil` if the length is impossible for the mode
    /// (ECB/CBC not a multiple of 16, CBC-PAD decrypt not a positive multiple of 16, GCM decrypt shorter than
    /// the tag, negative) or overflows.
    public static func outputLength(mode: Mode, direction: Direction, inputLength n: Int) -> Int? {
        guard n >= 0 else { return nil }
        switch mode {
        case .ecb, .cbc:
            return n % 16 == 0 ? n : nil
        case .cbcPad:
            if direction == .encrypt {
                let (r, o) = (n - n % 16).addingReportingOverflow(16)
                return o ? nil : r
            }
            return (n > 0 && n % 16 == 0) ? n - 1 : nil
        case .ctr:
            return n
        case .gcm(_, _, let t):
            guard (4...16).contains(t) else { return nil }
            if direction == .encrypt {
                let (r, o) = n.addingReportingOverflow(t)
                return o ? nil : r
            }
            return n >= t ? n - t : nil
        }
    }
}
