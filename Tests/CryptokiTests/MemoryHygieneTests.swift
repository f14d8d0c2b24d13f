// Secrets in memory (issue 13): an operation's undelivered output (ActiveCipher.pending, plaintext when decrypting)
// reads zero once delivered and whenever the operation ends otherwise — C_DecryptFinal, an error, C_SessionCancel,
// C_CloseSession, C_Finalize. The test keeps its own reference to the pending SecretBytes: if the code merely dropped
// the slot's reference, that buffer would still hold the plaintext and the test would fail. Also: the PIN path takes
// SecretBytes, and a readable secret attribute is answered as SecretBytes.
import CP11Kit
import CryptoCore
import XCTest
@testable import Cryptoki

final class MemoryHygieneTests: XCTestCase {
    var env: TestEnvironment!
    var m: Module!
    var s: CK_SESSION_HANDLE = 0
    var key: CK_OBJECT_HANDLE = 0
    let plaintext: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    let cbcPad = Mechanism(type: CKM_AES_CBC_PAD, parameter: .bytes([UInt8](repeating: 7, count: 16)))
    var ciphertext: [UInt8] = []

    override func setUpWithError() throws {
        env = try TestEnvironment()
        m = try env.module()
        s = try m.readySession()
        key = try m.aesKey(s)
        ciphertext = try m.encryptAll(s, cbcPad, key, plaintext)
    }

    private func pending(_ session: CK_SESSION_HANDLE) throws -> SecretBytes? {
        try m.session(session).ops.withLock { $0.decrypt?.pending }
    }

    private func isZero(_ b: SecretBytes) -> Bool { b.withUnsafeBytes { $0.allSatisfy { $0 == 0 } } }

    /// C_DecryptInit + C_Decrypt(NULL): CBC-PAD's length is only known by decrypting, so the plaintext is kept.
    private func decryptWithLengthQuery(_ session: CK_SESSION_HANDLE) throws -> SecretBytes {
        try m.decryptInit(session, mechanism: cbcPad, key: key)
        let r = try ciphertext.withUnsafeBytes { try m.decrypt(session, input: $0, output: .lengthQuery) }
        XCTAssertEqual(r, .lengthRequired(plaintext.count))
        let p = try XCTUnwrap(try pending(session), "the computed plaintext is kept for the fetch")
        XCTAssertEqual(p.unsafeCopyToArray(), plaintext)
        return p
    }

    func testPendingPlaintextIsWipedOnceDelivered() throws {
        let p = try decryptWithLengthQuery(s)
        var out = [UInt8](repeating: 0, count: plaintext.count)
        let r = try ciphertext.withUnsafeBytes { input in
            try out.withUnsafeMutableBytes { try m.decrypt(s, input: input, output: .buffer($0)) }
        }
        XCTAssertEqual(r, .written(plaintext.count))
        XCTAssertEqual(out, plaintext)
        XCTAssertTrue(isZero(p), "delivered pending plaintext still readable")
        XCTAssertNil(try m.session(s).ops.withLock { $0.decrypt })
    }

    func testPendingPlaintextIsWipedByDecryptFinal() throws {
        try m.decryptInit(s, mechanism: cbcPad, key: key)
        // Multi-part: the updates release all but the last block, which C_DecryptFinal decrypts and unpads.
        _ = try ciphertext.withUnsafeBytes { all in
            var sink = [UInt8](repeating: 0, count: all.count)
            return try sink.withUnsafeMutableBytes { try m.decryptUpdate(s, input: all, output: .buffer($0)) }
        }
        XCTAssertEqual(try m.decryptFinal(s, output: .lengthQuery), .lengthRequired(plaintext.count - 16))
        let p = try XCTUnwrap(try pending(s))
        XCTAssertEqual(p.unsafeCopyToArray(), Array(plaintext[16...]))
        var out = [UInt8](repeating: 0, count: 5)
        XCTAssertEqual(try out.withUnsafeMutableBytes { try m.decryptFinal(s, output: .buffer($0)) }, .written(5))
        XCTAssertEqual(out, Array(plaintext[16...]))
        XCTAssertTrue(isZero(p), "C_DecryptFinal left the plaintext in the pending buffer")
    }

    func testPendingPlaintextIsWipedWhenAnErrorEndsTheOperation() throws {
        let p = try decryptWithLengthQuery(s)
        // C_DecryptUpdate while a single-part result waits: CKR_OPERATION_ACTIVE, which ends the operation.
        expectCKR(CKR_OPERATION_ACTIVE) {
            _ = try ciphertext.withUnsafeBytes { try m.decryptUpdate(s, input: $0, output: .lengthQuery) }
        }
        XCTAssertNil(try m.session(s).ops.withLock { $0.decrypt }, "the error ended the operation")
        XCTAssertTrue(isZero(p), "an error left the plaintext in the pending buffer")
    }

    func testPendingPlaintextIsWipedByTooSmallThenCancel() throws {
        let p = try decryptWithLengthQuery(s)
        var small = [UInt8](repeating: 0, count: 2)
        let r = try ciphertext.withUnsafeBytes { input in
            try small.withUnsafeMutableBytes { try m.decrypt(s, input: input, output: .buffer($0)) }
        }
        XCTAssertEqual(r, .bufferTooSmall(required: plaintext.count))
        XCTAssertFalse(isZero(p), "CKR_BUFFER_TOO_SMALL keeps the operation and its output")
        try m.cancelOperations(s, flags: CKF_DECRYPT)
        XCTAssertTrue(isZero(p), "C_SessionCancel left the plaintext in the pending buffer")
    }

    func testPendingPlaintextIsWipedByCloseSession() throws {
        let other = try m.openSession(0, flags: CKF_SERIAL_SESSION)
        let p = try decryptWithLengthQuery(other)
        try m.closeSession(other)
        XCTAssertTrue(isZero(p), "C_CloseSession left the plaintext in the pending buffer")
    }

    func testPendingPlaintextIsWipedByFinalize() throws {
        let p = try decryptWithLengthQuery(s)
        m.finalize()
        XCTAssertTrue(isZero(p), "C_Finalize left the plaintext in the pending buffer")
    }

    /// Multi-part N2HE-free path of SymmetricCipher's buffering (secureAppend) and the joined CBC-PAD single-part
    /// output still give the right plaintext.
    func testDecryptResultsUnchanged() throws {
        XCTAssertEqual(try m.decryptAll(s, cbcPad, key, ciphertext), plaintext)
        XCTAssertEqual(try m.encryptParts(s, cbcPad, key, ciphertext, chunks: [1, 3, 5, 16], decrypt: true), plaintext)
    }

    func testPINPathIsSecretBytes() throws {
        // Compile-time: the Module API (what the C ABI calls) takes the PIN as SecretBytes.
        let login: (Module) -> (CK_SESSION_HANDLE, CK_USER_TYPE, SecretBytes) throws -> Void = Module.login
        let setPIN: (Module) -> (CK_SESSION_HANDLE, SecretBytes, SecretBytes) throws -> Void = Module.setPIN
        let initPIN: (Module) -> (CK_SESSION_HANDLE, SecretBytes) throws -> Void = Module.initPIN
        _ = initPIN
        try m.logout(s)
        expectCKR(CKR_PIN_INCORRECT) { try login(self.m)(self.s, CKU_USER, SecretBytes(copying: Array("wrong-pin-0".utf8))) }
        try login(m)(s, CKU_USER, SecretBytes(copying: userPIN))
        let newPIN = SecretBytes(copying: Array("another-pin-42".utf8))
        try setPIN(m)(s, SecretBytes(copying: userPIN), newPIN)
        try m.logout(s)
        try login(m)(s, CKU_USER, newPIN)
        // The length policy reads the SecretBytes' count.
        XCTAssertFalse(Token.pinLengthOK(SecretBytes(count: CK.minPINLength - 1)))
        XCTAssertTrue(Token.pinLengthOK(SecretBytes(count: CK.minPINLength)))
        XCTAssertFalse(Token.pinLengthOK(SecretBytes(count: CK.maxPINLength + 1)))
    }

    func testReadableSecretAttributeIsAnsweredAsSecretBytes() throws {
        let value = [UInt8](repeating: 0x3C, count: 32)
        let k = try m.aesKey(s, value: value, extra: [boolAttr(CKA_SENSITIVE, false)])
        guard case .secret(let v) = try m.attribute(s, k, CKA_VALUE) else { return XCTFail("CKA_VALUE not answered as SecretBytes") }
        XCTAssertEqual(v.unsafeCopyToArray(), value)
        // Public attributes stay plain values.
        guard case .value(.bytes) = try m.attribute(s, k, CKA_VALUE_LEN) else { return XCTFail("CKA_VALUE_LEN") }
    }
}
