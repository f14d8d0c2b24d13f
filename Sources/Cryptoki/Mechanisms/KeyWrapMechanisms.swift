// AES key wrap: CKM_AES_KEY_WRAP (RFC 3394, optional 8-byte IV) and CKM_AES_KEY_WRAP_PAD (RFC 5649, optional
// 4-byte IV), for C_WrapKey / C_UnwrapKey and for single-part C_Encrypt / C_Decrypt (multi-part buffers until
// the final call). Through CryptoCore.AESKeyWrap.
import CP11Kit
import CryptoCore

enum KeyWrapMechanism {
    static func isKeyWrap(_ type: CK_MECHANISM_TYPE) -> Bool {
        type == CKM_AES_KEY_WRAP || type == CKM_AES_KEY_WRAP_PAD
    }

    /// (padded, iv) for a key-wrap mechanism.
    static func parameters(_ m: Mechanism) throws -> (padded: Bool, iv: [UInt8]?) {
        let padded = m.type == CKM_AES_KEY_WRAP_PAD
        switch m.parameter {
        case .none: return (padded, nil)
        case .bytes(let b) where b.isEmpty: return (padded, nil)
        case .bytes(let b) where b.count == (padded ? 4 : 8): return (padded, b)
        default: throw ckr(CKR_MECHANISM_PARAM_INVALID)
        }
    }
}

final class KeyWrapCipherOperation: CipherOperation {
    let key: SecretBytes
    let padded: Bool
    let iv: [UInt8]?
    let direction: CipherDirection
    private var buffered: [UInt8] = []

    init(key: SecretBytes, mechanism: Mechanism, direction: CipherDirection) throws {
        guard [16, 24, 32].contains(key.count) else { throw ckr(CKR_KEY_SIZE_RANGE) }
        (padded, iv) = try KeyWrapMechanism.parameters(mechanism)
        self.key = key
        self.direction = direction
    }

    deinit { secureZero(&buffered) }

    func singleOutputLength(input: UnsafeRawBufferPointer) throws -> Int? {
        try singleOutputLength(inputLength: input.count)
    }

    func singleOutputLength(inputLength: Int) throws -> Int? {
        switch direction {
        case .encrypt:
            guard inputLength > 0, let n = AESKeyWrap.wrappedLength(plaintextLength: inputLength, padded: padded) else {
                throw ckr(CKR_DATA_LEN_RANGE)
            }
            return n
        case .decrypt:
            guard inputLength % 8 == 0, inputLength >= (padded ? 16 : 24) else { throw ckr(CKR_ENCRYPTED_DATA_LEN_RANGE) }
            return padded ? nil : inputLength - 8
        }
    }

    func single(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        _ = try singleOutputLength(inputLength: input.count)
        do {
            switch direction {
            case .encrypt:
                return try AESKeyWrap.wrap(kek: key, plaintext: RawView(input), padded: padded, iv: iv)
            case .decrypt:
                return try AESKeyWrap.unwrap(kek: key, ciphertext: RawView(input), padded: padded, iv: iv).unsafeCopyToArray()
            }
        } catch {
            throw direction.map(error, "AES key wrap")
        }
    }

    func updateOutputLength(inputLength: Int) throws -> Int {
        guard inputLength <= (1 << 30) - buffered.count else { throw ckr(direction.lengthError) }
        return 0
    }

    func update(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard buffered.count <= Int.max - input.count, buffered.count + input.count <= 1 << 30 else {
            throw ckr(direction.lengthError)
        }
        buffered.append(contentsOf: input)
        return []
    }

    func finalOutputLength() throws -> Int? { try singleOutputLength(inputLength: buffered.count) }

    func final() throws -> [UInt8] {
        try buffered.withUnsafeBytes { try single($0) }
    }
}
