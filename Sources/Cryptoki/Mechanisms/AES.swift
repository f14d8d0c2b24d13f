// AES: key generation (CKM_AES_KEY_GEN) and the ECB / CBC / CBC-PAD / GCM ciphers, all through CryptoCore.
import CP11Kit
import CryptoCore

enum CipherDirection { case encrypt, decrypt }

extension CipherDirection {
    var lengthError: CK_RV { self == .encrypt ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE }
    var cryptoDirection: SymmetricCipher.Direction { self == .encrypt ? .encrypt : .decrypt }

    /// CryptoCore failures during an operation → CK_RV.
    func map(_ error: any Error, _ what: String) -> CKRError {
        switch error {
        case let e as CKRError: return e
        case let e as CryptoError:
            switch e {
            case .invalidInputLength, .lengthOverflow: return CKRError(lengthError)
            case .invalidPadding, .authenticationFailed, .integrityFailure:
                return CKRError(self == .decrypt ? CKR_ENCRYPTED_DATA_INVALID : CKR_FUNCTION_FAILED)
            case .invalidKeyLength: return CKRError(CKR_KEY_SIZE_RANGE)
            case .invalidIVLength, .invalidTagLength: return CKRError(CKR_MECHANISM_PARAM_INVALID)
            default: return ErrorMap.wrap(e, context: what)
            }
        default: return ErrorMap.wrap(error, context: what)
        }
    }
}

enum AESMechanism {
    /// The SymmetricCipher mode for an AES mechanism + parameter (CKR_MECHANISM_PARAM_INVALID on a bad one).
    static func mode(for m: Mechanism) throws -> SymmetricCipher.Mode {
        switch m.type {
        case CKM_AES_ECB:
            try Mechanisms.requireNoParameter(m)
            return .ecb
        case CKM_AES_CBC, CKM_AES_CBC_PAD:
            guard case .bytes(let iv) = m.parameter, iv.count == 16 else { throw ckr(CKR_MECHANISM_PARAM_INVALID) }
            return m.type == CKM_AES_CBC ? .cbc(iv: iv) : .cbcPad(iv: iv)
        case CKM_AES_GCM:
            // CK_GCM_PARAMS: IV 1..256 bytes; tag 32..128 bits in steps of 8 (CryptoCore's 4..16-byte tags).
            guard case .gcm(let iv, let aad, let tagBits) = m.parameter,
                  (1...256).contains(iv.count), tagBits % 8 == 0, (32...128).contains(tagBits) else {
                throw ckr(CKR_MECHANISM_PARAM_INVALID)
            }
            return .gcm(iv: iv, aad: aad, tagLength: Int(tagBits / 8))
        default:
            throw ckr(CKR_MECHANISM_INVALID)
        }
    }
}

final class AESCipherOperation: CipherOperation {
    let key: SecretBytes
    let mode: SymmetricCipher.Mode
    let direction: CipherDirection
    private var stream: SymmetricCipher?
    /// Bytes fed to the multi-part operation so far (ECB/CBC: the final call checks block alignment).
    private var total = 0

    init(key: SecretBytes, mode: SymmetricCipher.Mode, direction: CipherDirection) throws {
        guard [16, 24, 32].contains(key.count) else { throw ckr(CKR_KEY_SIZE_RANGE) }
        self.key = key
        self.mode = mode
        self.direction = direction
    }

    private var blockAligned: Bool {
        switch mode {
        case .ecb, .cbc: return true
        default: return false
        }
    }

    func singleOutputLength(input: UnsafeRawBufferPointer) throws -> Int? {
        try singleOutputLength(inputLength: input.count)
    }

    func singleOutputLength(inputLength: Int) throws -> Int? {
        if blockAligned, inputLength % 16 != 0 { throw ckr(direction.lengthError) }
        if case .cbcPad = mode, direction == .decrypt {
            guard inputLength > 0, inputLength % 16 == 0 else { throw ckr(CKR_ENCRYPTED_DATA_LEN_RANGE) }
            return nil  // padding decides: computed once, kept for the fetch
        }
        guard let n = SymmetricCipher.outputLength(mode: mode, direction: direction.cryptoDirection, inputLength: inputLength) else {
            throw ckr(direction.lengthError)
        }
        return n
    }

    func single(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        _ = try singleOutputLength(inputLength: input.count)
        do {
            if case .gcm(let iv, let aad, let tagLength) = mode {
                if direction == .encrypt {
                    return try AESGCM.seal(key: key, iv: iv, plaintext: RawView(input), aad: aad, tagLength: tagLength)
                }
                return try AESGCM.open(key: key, iv: iv, ciphertextAndTag: RawView(input), aad: aad, tagLength: tagLength)
            }
            let c = try SymmetricCipher(mode: mode, direction: direction.cryptoDirection, key: key)
            var out = try c.update(RawView(input))
            out += try c.finish()
            return out
        } catch {
            throw direction.map(error, "AES")
        }
    }

    private func cipher() throws -> SymmetricCipher {
        if let s = stream { return s }
        do {
            let s = try SymmetricCipher(mode: mode, direction: direction.cryptoDirection, key: key)
            stream = s
            return s
        } catch {
            throw direction.map(error, "AES init")
        }
    }

    func updateOutputLength(inputLength: Int) throws -> Int {
        if case .gcm = mode, direction == .decrypt {
            guard inputLength <= Limits.maxBufferedInput - total else { throw ckr(CKR_ENCRYPTED_DATA_LEN_RANGE) }
        }
        guard let n = try cipher().updateOutputLength(inputLength: inputLength) else { throw ckr(direction.lengthError) }
        return n
    }

    func update(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        let (sum, overflow) = total.addingReportingOverflow(input.count)
        guard !overflow else { throw ckr(direction.lengthError) }
        total = sum
        do { return try cipher().update(RawView(input)) } catch { throw direction.map(error, "AES update") }
    }

    func finalOutputLength() throws -> Int? {
        let c = try cipher()
        if blockAligned, total % 16 != 0 { throw ckr(direction.lengthError) }
        if case .cbcPad = mode, direction == .decrypt {
            guard total > 0, total % 16 == 0 else { throw ckr(CKR_ENCRYPTED_DATA_LEN_RANGE) }
            return nil
        }
        return c.finishOutputLength()
    }

    func final() throws -> [UInt8] {
        do { return try cipher().finish() } catch { throw direction.map(error, "AES final") }
    }
}
