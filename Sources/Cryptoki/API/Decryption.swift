// PKCS#11 §5.9 decryption: C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal (machinery in
// Sessions/CipherCalls.swift; N2HE's decryption rules in Mechanisms/N2HEMechanisms.swift).
import CP11Kit

extension Module {
    public func decryptInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        try cipherInit(session, mechanism: mechanism, key: key, direction: .decrypt)
        noteKeyUse(session, key: key, operation: "decrypt", mechanism: mechanism.type)
    }
    public func decrypt(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try cipherSingle(session, input: input, output: output, direction: .decrypt)
    }
    public func decryptUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try cipherUpdate(session, input: input, output: output, direction: .decrypt)
    }
    public func decryptFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try cipherFinal(session, output: output, direction: .decrypt)
    }
}
