// PKCS#11 §5.8 encryption: C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal. The cipher machinery they
// share with decryption (operation slots, key checks, the §5.2 output rule) is Sessions/CipherCalls.swift.
import CP11Kit

extension Module {
    public func encryptInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        try cipherInit(session, mechanism: mechanism, key: key, direction: .encrypt)
        noteKeyUse(session, key: key, operation: "encrypt", mechanism: mechanism.type)
    }
    public func encrypt(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try cipherSingle(session, input: input, output: output, direction: .encrypt)
    }
    public func encryptUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try cipherUpdate(session, input: input, output: output, direction: .encrypt)
    }
    public func encryptFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try cipherFinal(session, output: output, direction: .encrypt)
    }
}
