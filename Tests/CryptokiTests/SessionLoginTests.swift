import CP11Kit
import XCTest
@testable import Cryptoki

final class SessionLoginTests: XCTestCase {
    func testUninitialisedTokenAndInit() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let info = try m.tokenInfo(0)
        XCTAssertEqual(info.flags & CKF_TOKEN_INITIALIZED, 0)
        XCTAssertNotEqual(info.flags & CKF_RNG, 0)
        XCTAssertNotEqual(info.flags & CKF_LOGIN_REQUIRED, 0)
        XCTAssertEqual(info.minPinLen, 4)
        XCTAssertEqual(info.maxPinLen, 255)
        expectCKR(CKR_TOKEN_NOT_RECOGNIZED) { _ = try m.openSession(0, flags: CKF_SERIAL_SESSION) }
        expectCKR(CKR_PIN_LEN_RANGE) { try m.initToken(0, soPIN: [1, 2, 3], label: [] ) }
        try m.initToken(0, soPIN: soPIN, label: Array("my label".utf8))
        let after = try m.tokenInfo(0)
        XCTAssertNotEqual(after.flags & CKF_TOKEN_INITIALIZED, 0)
        XCTAssertEqual(after.flags & CKF_USER_PIN_INITIALIZED, 0)
        XCTAssertEqual(after.label, "my label")
        XCTAssertEqual(after.utcTime.count, 16)
    }

    func testSessionStatesAndLoginRules() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        try m.initToken(0, soPIN: soPIN, label: [])
        expectCKR(CKR_SESSION_PARALLEL_NOT_SUPPORTED) { _ = try m.openSession(0, flags: 0) }
        let ro = try m.openSession(0, flags: CKF_SERIAL_SESSION)
        let rw = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        XCTAssertEqual(try m.sessionInfo(ro).state, CKS_RO_PUBLIC_SESSION)
        XCTAssertEqual(try m.sessionInfo(rw).state, CKS_RW_PUBLIC_SESSION)
        XCTAssertEqual(try m.tokenInfo(0).sessionCount, 2)
        XCTAssertEqual(try m.tokenInfo(0).rwSessionCount, 1)

        expectCKR(CKR_USER_PIN_NOT_INITIALIZED) { try m.login(rw, userType: CKU_USER, pin: userPIN) }
        expectCKR(CKR_SESSION_READ_ONLY_EXISTS) { try m.login(rw, userType: CKU_SO, pin: soPIN) }
        expectCKR(CKR_USER_TYPE_INVALID) { try m.login(rw, userType: 7, pin: soPIN) }
        expectCKR(CKR_OPERATION_NOT_INITIALIZED) { try m.login(rw, userType: CKU_CONTEXT_SPECIFIC, pin: userPIN) }
        try m.closeSession(ro)
        expectCKR(CKR_SESSION_HANDLE_INVALID) { try m.closeSession(ro) }

        expectCKR(CKR_PIN_INCORRECT) { try m.login(rw, userType: CKU_SO, pin: Array("wrong-pin".utf8)) }
        try m.login(rw, userType: CKU_SO, pin: soPIN)
        XCTAssertEqual(try m.sessionInfo(rw).state, CKS_RW_SO_FUNCTIONS)
        expectCKR(CKR_SESSION_READ_WRITE_SO_EXISTS) { _ = try m.openSession(0, flags: CKF_SERIAL_SESSION) }
        expectCKR(CKR_USER_ALREADY_LOGGED_IN) { try m.login(rw, userType: CKU_SO, pin: soPIN) }
        expectCKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN) { try m.login(rw, userType: CKU_USER, pin: userPIN) }
        expectCKR(CKR_PIN_LEN_RANGE) { try m.initPIN(rw, pin: [1]) }
        try m.initPIN(rw, pin: userPIN)
        XCTAssertNotEqual(try m.tokenInfo(0).flags & CKF_USER_PIN_INITIALIZED, 0)
        try m.logout(rw)
        expectCKR(CKR_USER_NOT_LOGGED_IN) { try m.logout(rw) }
        expectCKR(CKR_USER_NOT_LOGGED_IN) { try m.initPIN(rw, pin: userPIN) }

        let ro2 = try m.openSession(0, flags: CKF_SERIAL_SESSION)
        try m.login(ro2, userType: CKU_USER, pin: userPIN)
        // The login belongs to the application: every session sees it.
        XCTAssertEqual(try m.sessionInfo(ro2).state, CKS_RO_USER_FUNCTIONS)
        XCTAssertEqual(try m.sessionInfo(rw).state, CKS_RW_USER_FUNCTIONS)
        expectCKR(CKR_SESSION_EXISTS) { try m.initToken(0, soPIN: soPIN, label: []) }

        // Closing the last session logs out.
        try m.closeSession(ro2)
        XCTAssertEqual(try m.sessionInfo(rw).state, CKS_RW_USER_FUNCTIONS)
        try m.closeSession(rw)
        let again = try m.openSession(0, flags: CKF_SERIAL_SESSION)
        XCTAssertEqual(try m.sessionInfo(again).state, CKS_RO_PUBLIC_SESSION)
        try m.closeAllSessions(0)
        expectCKR(CKR_SESSION_HANDLE_INVALID) { _ = try m.sessionInfo(again) }
    }

    func testSetPINAndReinitialiseNeedsSOPIN() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession(login: false)
        let newPIN = Array("another-pin".utf8)
        expectCKR(CKR_PIN_LEN_RANGE) { try m.setPIN(s, oldPIN: userPIN, newPIN: [1, 2]) }
        expectCKR(CKR_PIN_INCORRECT) { try m.setPIN(s, oldPIN: Array("nope-nope".utf8), newPIN: newPIN) }
        try m.setPIN(s, oldPIN: userPIN, newPIN: newPIN)
        expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_USER, pin: userPIN) }
        try m.login(s, userType: CKU_USER, pin: newPIN)
        let key = try m.aesKey(s, token: true)
        try m.closeSession(s)

        expectCKR(CKR_PIN_INCORRECT) { try m.initToken(0, soPIN: Array("wrong-so-pin".utf8), label: []) }
        try m.initToken(0, soPIN: soPIN, label: Array("fresh".utf8))
        XCTAssertEqual(try m.tokenInfo(0).flags & CKF_USER_PIN_INITIALIZED, 0)
        // Objects are wiped and old handles are dead.
        let s2 = try m.openSession(0, flags: CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try m.login(s2, userType: CKU_SO, pin: soPIN)
        expectCKR(CKR_OBJECT_HANDLE_INVALID) { _ = try m.attributeValues(s2, key, types: [CKA_LABEL]) }
        XCTAssertEqual(try m.find(s2, []).count, 0)
    }

    func testPINLockoutFlags() throws {
        let env = try TestEnvironment(retries: 3)
        let m = try env.module()
        let s = try m.readySession(login: false)
        let wrong = Array("wrong-pin".utf8)
        expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_USER, pin: wrong) }
        var f = try m.tokenInfo(0).flags
        XCTAssertNotEqual(f & CKF_USER_PIN_COUNT_LOW, 0)
        XCTAssertEqual(f & CKF_USER_PIN_FINAL_TRY, 0)
        expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_USER, pin: wrong) }
        f = try m.tokenInfo(0).flags
        XCTAssertNotEqual(f & CKF_USER_PIN_FINAL_TRY, 0)
        // A correct login resets the counter.
        try m.login(s, userType: CKU_USER, pin: userPIN)
        try m.logout(s)
        XCTAssertEqual(try m.tokenInfo(0).flags & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY), 0)
        for _ in 0..<2 { expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_USER, pin: wrong) } }
        expectCKR(CKR_PIN_LOCKED) { try m.login(s, userType: CKU_USER, pin: wrong) }
        f = try m.tokenInfo(0).flags
        XCTAssertNotEqual(f & CKF_USER_PIN_LOCKED, 0)
        expectCKR(CKR_PIN_LOCKED) { try m.login(s, userType: CKU_USER, pin: userPIN) }
        // The SO unlocks by setting a new user PIN.
        try m.login(s, userType: CKU_SO, pin: soPIN)
        try m.initPIN(s, pin: userPIN)
        try m.logout(s)
        XCTAssertEqual(try m.tokenInfo(0).flags & CKF_USER_PIN_LOCKED, 0)
        try m.login(s, userType: CKU_USER, pin: userPIN)
        // SO counters surface too.
        try m.logout(s)
        expectCKR(CKR_PIN_INCORRECT) { try m.login(s, userType: CKU_SO, pin: wrong) }
        XCTAssertNotEqual(try m.tokenInfo(0).flags & CKF_SO_PIN_COUNT_LOW, 0)
    }

    func testLogoutDestroysPrivateSessionObjectsAndOperationsAreExclusive() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let priv = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), boolAttr(CKA_PRIVATE, true),
                                                    textAttr(CKA_LABEL, "p")])
        let pub = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), textAttr(CKA_LABEL, "q")])
        try m.logout(s)
        expectCKR(CKR_OBJECT_HANDLE_INVALID) { _ = try m.attributeValues(s, priv, types: [CKA_LABEL]) }
        try m.login(s, userType: CKU_USER, pin: userPIN)
        expectCKR(CKR_OBJECT_HANDLE_INVALID) { _ = try m.attributeValues(s, priv, types: [CKA_LABEL]) }
        XCTAssertEqual(try m.bytes(s, pub, CKA_LABEL), Array("q".utf8))

        try m.digestInit(s, mechanism: Mechanism(type: CKM_SHA256))
        expectCKR(CKR_OPERATION_ACTIVE) { try m.digestInit(s, mechanism: Mechanism(type: CKM_SHA256)) }
        try m.cancelOperations(s, flags: CKF_ENCRYPT)
        expectCKR(CKR_OPERATION_ACTIVE) { try m.digestInit(s, mechanism: Mechanism(type: CKM_SHA256)) }
        try m.cancelOperations(s, flags: CKF_DIGEST)
        try m.digestInit(s, mechanism: Mechanism(type: CKM_SHA256))
        try m.cancelOperations(s, flags: 0)  // 0: everything
        try m.digestInit(s, mechanism: Mechanism(type: CKM_SHA256))
        expectCKR(CKR_OPERATION_NOT_INITIALIZED) { _ = try m.encryptFinal(s, output: .lengthQuery) }
        expectCKR(CKR_OPERATION_NOT_INITIALIZED) { _ = try m.findObjects(s, maxCount: 1) }
        try m.findObjectsInit(s, template: [])
        expectCKR(CKR_OPERATION_ACTIVE) { try m.findObjectsInit(s, template: []) }

        // A session object dies with its session.
        let s2 = try m.openSession(0, flags: CKF_SERIAL_SESSION)
        let mine = try m.createObject(s2, template: [ulongAttr(CKA_CLASS, CKO_DATA)])
        XCTAssertNoThrow(try m.attributeValues(s, mine, types: [CKA_CLASS]))
        try m.closeSession(s2)
        expectCKR(CKR_OBJECT_HANDLE_INVALID) { _ = try m.attributeValues(s, mine, types: [CKA_CLASS]) }
    }
}
