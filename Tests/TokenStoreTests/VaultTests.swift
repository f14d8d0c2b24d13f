import CryptoCore
import Foundation
import KeyWrap
import Synchronization
@testable import TokenStore
import XCTest

final class VaultTests: XCTestCase {
    let so = bytes("so-secret-1234")
    let user = bytes("user-pin-5678")

    func makeVault(_ dir: String) throws -> (TokenDatabase, TokenVault) {
        let db = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        return (db, try TokenVault(database: db, kdfLog2N: TokenVault.minimumKDFLog2N))
    }

    func testFreshTokenIsUninitialised() throws {
        let (db, vault) = try makeVault(try tempDir())
        let r = try db.tokenRecord()
        XCTAssertFalse(r.isInitialized)
        XCTAssertEqual(r.label, [UInt8](repeating: 0x20, count: 32))
        XCTAssertFalse(r.soPIN.isSet)
        XCTAssertEqual(r.formatVersion, 2)
        assertStoreError(.tokenNotInitialized) { _ = try vault.login(role: .so, pin: self.so, backend: LocalBackend()) }
        assertStoreError(.tokenNotInitialized) { try db.insert(uniqueID: "a", publicAttributes: [:], keys: nil) }
        XCTAssertThrowsError(try TokenVault(database: db, kdfLog2N: 9))
    }

    func testInitLoginCountdownLockoutAndSOReset() throws {
        let (db, vault) = try makeVault(try tempDir())
        let backend = CountingBackend()
        try vault.initialize(soPIN: so, label: bytes("My token"), backend: backend, maxAttempts: 3)
        XCTAssertEqual(backend.wraps, 1)
        var r = try db.tokenRecord()
        XCTAssertTrue(r.isInitialized)
        XCTAssertEqual(Array(r.label.prefix(8)), bytes("My token"))
        XCTAssertEqual(r.label.count, 32)
        XCTAssertEqual(r.serialNumber.count, 16)
        XCTAssertEqual(r.backend, BackendDescriptor(kind: "local"))
        XCTAssertEqual(r.soPIN, PINStatus(isSet: true, failedAttempts: 0, maxAttempts: 3))
        XCTAssertFalse(r.userPIN.isSet)

        assertStoreError(.userPINNotInitialized) { _ = try vault.login(role: .user, pin: self.user, backend: backend) }
        let soKeys = try vault.login(role: .so, pin: so, backend: backend)
        XCTAssertEqual(soKeys.role, .so)
        XCTAssertEqual(backend.unwraps, 1)
        try vault.initUserPIN(user, using: soKeys)
        r = try db.tokenRecord()
        XCTAssertEqual(r.userPIN, PINStatus(isSet: true, failedAttempts: 0, maxAttempts: 3))

        let userKeys = try vault.login(role: .user, pin: user, backend: backend)
        XCTAssertEqual(userKeys.rootKey, soKeys.rootKey)
        XCTAssertEqual(backend.unwraps, 2)
        assertStoreError(.wrongRole) { try vault.initUserPIN(self.user, using: userKeys) }

        // Wrong PINs count down without any backend call.
        assertStoreError(.pinIncorrect(remaining: 2)) { _ = try vault.login(role: .user, pin: bytes("nope"), backend: backend) }
        r = try db.tokenRecord()
        XCTAssertTrue(r.userPIN.isCountLow)
        XCTAssertFalse(r.userPIN.isFinalTry)
        assertStoreError(.pinIncorrect(remaining: 1)) { _ = try vault.login(role: .user, pin: bytes("nope"), backend: backend) }
        r = try db.tokenRecord()
        XCTAssertTrue(r.userPIN.isFinalTry)
        XCTAssertEqual(r.userPIN.remainingAttempts, 1)
        assertStoreError(.pinIncorrect(remaining: 0)) { _ = try vault.login(role: .user, pin: bytes("nope"), backend: backend) }
        XCTAssertTrue(try db.tokenRecord().userPIN.isLocked)
        // Locked: even the right PIN is refused, still no backend call.
        assertStoreError(.pinLocked) { _ = try vault.login(role: .user, pin: self.user, backend: backend) }
        XCTAssertEqual(backend.unwraps, 2)
        // The SO is unaffected; SO re-inits the user PIN, which unlocks.
        let so2 = try vault.login(role: .so, pin: so, backend: backend)
        try vault.initUserPIN(bytes("fresh-user"), using: so2)
        XCTAssertFalse(try db.tokenRecord().userPIN.isLocked)
        assertStoreError(.pinIncorrect(remaining: 2)) { _ = try vault.login(role: .user, pin: self.user, backend: backend) }
        let again = try vault.login(role: .user, pin: bytes("fresh-user"), backend: backend)
        XCTAssertEqual(again.rootKey, soKeys.rootKey)
        XCTAssertEqual(try db.tokenRecord().userPIN.failedAttempts, 0, "success resets the counter")
    }

    func testCounterSurvivesReopenAndSeenByOtherInstance() throws {
        let dir = try tempDir()
        let (db, vault) = try makeVault(dir)
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend(), maxAttempts: 5)
        let other = try TokenDatabase(directory: dir, indexedAttributes: indexed)
        XCTAssertEqual(try other.tokenRecord().soPIN.failedAttempts, 0)
        assertStoreError(.pinIncorrect(remaining: 4)) { try vault.verifyPIN(role: .so, pin: bytes("bad")) }
        XCTAssertEqual(try other.tokenRecord().soPIN.failedAttempts, 1)
        XCTAssertEqual(try TokenDatabase(directory: dir, indexedAttributes: []).tokenRecord().soPIN.failedAttempts, 1)
        _ = db
    }

    func testSetPIN() throws {
        let (_, vault) = try makeVault(try tempDir())
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend())
        let soKeys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        try vault.initUserPIN(user, using: soKeys)
        try vault.setPIN(role: .user, oldPIN: user, newPIN: bytes("new-user"), backend: LocalBackend())
        assertStoreError(.pinIncorrect(remaining: 9)) { _ = try vault.login(role: .user, pin: self.user, backend: LocalBackend()) }
        XCTAssertEqual(try vault.login(role: .user, pin: bytes("new-user"), backend: LocalBackend()).rootKey, soKeys.rootKey)
        assertStoreError(.pinIncorrect(remaining: 9)) { try vault.setPIN(role: .so, oldPIN: bytes("x"), newPIN: bytes("y"), backend: LocalBackend()) }
        try vault.setPIN(role: .so, oldPIN: so, newPIN: bytes("new-so"), backend: LocalBackend())
        XCTAssertEqual(try vault.login(role: .so, pin: bytes("new-so"), backend: LocalBackend()).rootKey, soKeys.rootKey)
    }

    func testReinitializeNeedsSOPINAndWipesEverything() throws {
        let (db, vault) = try makeVault(try tempDir())
        try vault.initialize(soPIN: so, label: bytes("one"), backend: LocalBackend())
        let keys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        try vault.initUserPIN(user, using: keys)
        try db.insert(uniqueID: "obj1", publicAttributes: [Attr.label: bytes("k")],
                      secretAttributes: [Attr.value: SecretBytes(copying: bytes("0123456789abcdef"))], keys: keys)
        let serial = try db.tokenRecord().serialNumber
        assertStoreError(.pinIncorrect(remaining: 9)) { try vault.initialize(soPIN: bytes("wrong"), label: [], backend: LocalBackend()) }
        XCTAssertEqual(try db.objectCount(), 1)
        // C_InitToken on an initialised token: the current SO PIN is required (and stays the SO PIN).
        try vault.initialize(soPIN: so, label: bytes("two"), backend: LocalBackend())
        let r = try db.tokenRecord()
        XCTAssertNotEqual(r.serialNumber, serial)
        XCTAssertFalse(r.userPIN.isSet)
        XCTAssertEqual(r.soPIN.failedAttempts, 0)
        XCTAssertEqual(try db.objectCount(), 0)
        XCTAssertEqual(try db.find(matching: [Attr.label: bytes("k")]), [])
        // Keys from before the re-initialisation are stale.
        assertStoreError(.notLoggedIn) {
            try db.insert(uniqueID: "obj2", publicAttributes: [:], secretAttributes: [Attr.value: SecretBytes(count: 16)], keys: keys)
        }
        assertStoreError(.notLoggedIn) { try vault.initUserPIN(self.user, using: keys) }
        let fresh = try vault.login(role: .so, pin: so, backend: LocalBackend())
        XCTAssertNotEqual(fresh.rootKey, keys.rootKey, "re-initialisation makes a new root key")
        XCTAssertEqual(Array(try db.tokenRecord().label.prefix(3)), bytes("two"))
        XCTAssertThrowsError(try vault.initialize(soPIN: so, label: [UInt8](repeating: 65, count: 33), backend: LocalBackend()))
    }

    func testTamperedEnvelopeAndMovedEnvelopeRefused() throws {
        let dirA = try tempDir(), dirB = try tempDir()
        let (dbA, vaultA) = try makeVault(dirA)
        let (_, vaultB) = try makeVault(dirB)
        try vaultA.initialize(soPIN: so, label: [], backend: LocalBackend())
        try vaultB.initialize(soPIN: so, label: [], backend: LocalBackend())
        // Same PIN, but A's SO envelope copied into B is bound to A's identity: refused.
        let aSealed = try sqlite3Shell(dbA.path, "SELECT hex(sealed) || '|' || hex(salt) FROM pin WHERE role = 'so'")
        let parts = aSealed.split(separator: "|")
        XCTAssertEqual(parts.count, 2)
        try sqlite3Shell(dirB + "/token.sqlite", "UPDATE pin SET sealed = x'\(parts[0])', salt = x'\(parts[1])' WHERE role = 'so'")
        assertStoreError(.pinIncorrect(remaining: 9)) { _ = try vaultB.login(role: .so, pin: self.so, backend: LocalBackend()) }

        // One flipped byte in A's envelope: refused like a wrong PIN (the GCM tag cannot tell them apart).
        let flipped = try sqlite3Shell(dbA.path, "SELECT hex(substr(sealed, 1, 20)) || '|' || hex(substr(sealed, 22)) || '|' || hex(substr(sealed, 21, 1)) FROM pin WHERE role = 'so'")
        let f = flipped.split(separator: "|").map(String.init)
        let byte = (UInt8(f[2], radix: 16) ?? 0) ^ 0x01
        try sqlite3Shell(dbA.path, "UPDATE pin SET sealed = x'\(f[0])' || x'\(String(format: "%02X", byte))' || x'\(f[1])' WHERE role = 'so'")
        assertStoreError(.pinIncorrect(remaining: 9)) { _ = try vaultA.login(role: .so, pin: self.so, backend: LocalBackend()) }
    }

    func testBackendMismatchIsTypedAndHappensAfterPINCheck() throws {
        let (_, vault) = try makeVault(try tempDir())
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend())
        XCTAssertThrowsError(try vault.login(role: .so, pin: so, backend: OtherKindBackend())) { error in
            guard case .backend(.misconfigured)? = error as? StoreError else { return XCTFail("\(error)") }
        }
        assertStoreError(.pinIncorrect(remaining: 9)) { _ = try vault.login(role: .so, pin: bytes("bad"), backend: OtherKindBackend()) }
    }

    func testTamperedWrappedRootIsIntegrityFailureAfterPINCheck() throws {
        let (db, vault) = try makeVault(try tempDir())
        let backend = CountingBackend()
        try vault.initialize(soPIN: so, label: [], backend: backend)
        // Flip one byte of the sealed backend blob: the PIN is right (counter reset), the blob is refused
        // before the backend sees it.
        let original = UInt8(try sqlite3Shell(db.path, "SELECT hex(substr(wrapped_root, 21, 1)) FROM token"), radix: 16) ?? 0
        try sqlite3Shell(db.path, "UPDATE token SET wrapped_root = substr(wrapped_root, 1, 20) || x'\(String(format: "%02X", original ^ 1))' || substr(wrapped_root, 22) WHERE id = 1")
        assertStoreError(.integrityFailure) { _ = try vault.login(role: .so, pin: self.so, backend: backend) }
        XCTAssertEqual(backend.unwraps, 0)
        XCTAssertEqual(try db.tokenRecord().soPIN.failedAttempts, 0)
    }

    func testRecordedBackendDescriptorIsAuthenticated() throws {
        let (db, vault) = try makeVault(try tempDir())
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend())
        try sqlite3Shell(db.path, "UPDATE token SET backend_key_version = 'v9' WHERE id = 1")
        assertStoreError(.integrityFailure) { _ = try vault.login(role: .so, pin: self.so, backend: LocalBackend()) }
    }

    /// KEK rotation / backend migration: one backend call, objects and PINs untouched.
    func testRewrapRootKeyKeepsObjectsAndPINs() throws {
        let (db, vault) = try makeVault(try tempDir())
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend())
        let soKeys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        try vault.initUserPIN(user, using: soKeys)
        let secret = try SecretBytes.random(count: 32)
        try db.insert(uniqueID: "k", publicAttributes: [Attr.label: bytes("k")], secretAttributes: [Attr.value: secret], keys: soKeys)
        let rotated = OtherKindBackend(kind: "other", version: "2")
        try vault.rewrapRootKey(using: soKeys, backend: rotated)
        XCTAssertEqual(try db.tokenRecord().backend, BackendDescriptor(kind: "other", keyID: "k1", keyVersion: "2"))
        XCTAssertThrowsError(try vault.login(role: .user, pin: user, backend: LocalBackend())) { error in
            guard case .backend(.misconfigured)? = error as? StoreError else { return XCTFail("\(error)") }
        }
        // A new key version of the same backend is accepted for unwrap (rotation keeps old versions usable).
        let userKeys = try vault.login(role: .user, pin: user, backend: OtherKindBackend(kind: "other", version: "3"))
        XCTAssertEqual(userKeys.rootKey, soKeys.rootKey)
        let obj = try XCTUnwrap(try db.object(uniqueID: "k"))
        XCTAssertEqual(try db.unseal(obj, attribute: Attr.value, keys: userKeys), secret)
        // Rotation by the user's session works too; the SO PIN still opens.
        try vault.rewrapRootKey(using: userKeys, backend: LocalBackend())
        XCTAssertEqual(try vault.login(role: .so, pin: so, backend: LocalBackend()).rootKey, soKeys.rootKey)
    }

    /// An attempt still in flight (another process's KDF running) is not a failure: the right PIN clears no
    /// failure because of it and leaves it counted; one whose process died (older than the attempt lifetime)
    /// becomes a failure, which the next right PIN reports as cleared.
    func testAttemptsInFlightAreNotFailuresAndDeadOnesAre() throws {
        let (db, vault) = try makeVault(try tempDir())
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend(), maxAttempts: 5)
        let now = Int(time(nil))
        try sqlite3Shell(db.path, "INSERT INTO pin_attempts (role, started) VALUES ('so', \(now))")
        var keys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        XCTAssertEqual(keys.priorFailedAttempts, 0)
        XCTAssertEqual(try sqlite3Shell(db.path, "SELECT count(*) FROM pin_attempts"), "1", "the other attempt stays counted")
        assertStoreError(.pinIncorrect(remaining: 4)) { try vault.verifyPIN(role: .so, pin: bytes("bad")) }

        try sqlite3Shell(db.path, "UPDATE pin_attempts SET started = \(now - Int(TokenVault.attemptLifetime) - 1)")
        keys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        XCTAssertEqual(keys.priorFailedAttempts, 2, "the wrong PIN and the dead attempt")
        XCTAssertEqual(try sqlite3Shell(db.path, "SELECT count(*) FROM pin_attempts"), "0")
        XCTAssertEqual(try db.tokenRecord().soPIN.failedAttempts, 0)
    }

    /// Attempts in flight take tries: with 2 wrong PINs of 3 and one attempt in flight, another attempt waits for
    /// it to end instead of getting a fourth try; the right PIN then gets in.
    func testAttemptsInFlightThatFillTheTriesLeftMakeTheNextWait() throws {
        let (db, vault) = try makeVault(try tempDir())
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend(), maxAttempts: 3)
        for remaining in [2, 1] {
            assertStoreError(.pinIncorrect(remaining: remaining)) { try vault.verifyPIN(role: .so, pin: bytes("bad")) }
        }
        try sqlite3Shell(db.path, "INSERT INTO pin_attempts (role, started) VALUES ('so', \(Int(time(nil))))")
        let path = db.path
        let ended = expectation(description: "the attempt in flight ends")
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) {
            _ = try? sqlite3Shell(path, "DELETE FROM pin_attempts")
            ended.fulfill()
        }
        let start = DispatchTime.now()
        let keys = try vault.login(role: .so, pin: so, backend: LocalBackend())
        XCTAssertGreaterThan(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds, 400_000_000, "it waited")
        XCTAssertEqual(keys.priorFailedAttempts, 2)
        wait(for: [ended], timeout: 10)
    }

    /// Two right PINs checked at once by two connections (two processes' worth): neither is told of a failure.
    func testRightPINsCheckedAtOnceDoNotCountEachOther() throws {
        let dir = try tempDir()
        // A KDF slow enough (2^14, some 20 ms) that the checks overlap.
        let vault = try TokenVault(database: try TokenDatabase(directory: dir, indexedAttributes: indexed), kdfLog2N: 14)
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend(), maxAttempts: 3)
        let vaults = try (0..<4).map { _ in try makeVault(dir).1 }
        let logins = Atomic<Int>(0), cleared = Atomic<Int>(0), pin = so
        DispatchQueue.concurrentPerform(iterations: 4 * 5) { i in
            if let keys = try? vaults[i % 4].login(role: .so, pin: pin, backend: LocalBackend()) {
                logins.add(1, ordering: .relaxed)
                cleared.add(keys.priorFailedAttempts, ordering: .relaxed)
            }
        }
        XCTAssertEqual(logins.load(ordering: .relaxed), 20, "every right PIN got in (none was refused as locked)")
        XCTAssertEqual(cleared.load(ordering: .relaxed), 0, "no right PIN was counted as a failure")
    }

    /// Absurd values written into the file are clamped or refused, never a trap or a huge allocation.
    func testTamperedCountersAndCostsDoNotTrap() throws {
        let (db, vault) = try makeVault(try tempDir())
        try vault.initialize(soPIN: so, label: [], backend: LocalBackend())
        try sqlite3Shell(db.path, "UPDATE pin SET failed = -9223372036854775808, max_attempts = 9223372036854775807")
        let r = try db.tokenRecord()
        XCTAssertEqual(r.soPIN.failedAttempts, 0)
        XCTAssertEqual(r.soPIN.remainingAttempts, 1_000_000)
        try sqlite3Shell(db.path, "UPDATE pin SET failed = 0, max_attempts = 10, r = 1073741824")
        XCTAssertThrowsError(try vault.login(role: .so, pin: so, backend: LocalBackend())) { error in
            guard case .corrupt? = error as? StoreError else { return XCTFail("\(error)") }
        }
        try sqlite3Shell(db.path, "UPDATE pin SET r = 8, log2n = 40")
        XCTAssertThrowsError(try vault.login(role: .so, pin: so, backend: LocalBackend()))
        try sqlite3Shell(db.path, "UPDATE pin SET log2n = 10")
        XCTAssertNoThrow(try vault.login(role: .so, pin: so, backend: LocalBackend()))
    }
}
