import CP11Kit
import CryptoCore

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

    var outputIsSecret: Bool { direction == .decrypt }

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
            var tail = try c.finish()
            if tail.isEmpty { return out }
            if direction == .encrypt { return out + tail }
            // Plaintext: joined into a fresh array; both parts are wiped (an `+=` could reallocate and free `out`
            // as it is).
            defer { secureZero(&out); secureZero(&tail) }
            var joined = [UInt8]()
            joined.reserveCapacity(out.count + tail.count)
            joined += out
            joined += tail
            return joined
        } catch {
            throw ErrorMap.cipher(error, direction: direction, context: "AES")
        }
    }

    private func cipher() throws -> SymmetricCipher {
        if let s = stream { return s }
        do {
            let s = try SymmetricCipher(mode: mode, direction: direction.cryptoDirection, key: key)
            stream = s
            return s
        } catch {
            throw ErrorMap.cipher(error, direction: direction, context: "AES init")
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
        do { return try cipher().update(RawView(input)) } catch { throw ErrorMap.cipher(error, direction: direction, context: "AES update") }
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
        do { return try cipher().finish() } catch { throw ErrorMap.cipher(error, direction: direction, context: "AES final") }
    }
}
