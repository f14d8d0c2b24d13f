// The whole PKCS#11 surface as Swift methods, one per C entry point, in the order of the C function list.
// The C ABI layer (Sources/TensorGuardPKCS11) converts pointers into these values, calls one method and
// maps a thrown CKRError to its CK_RV. Every method is safe to call from many threads at once.
//
// Contract for output-producing calls: `.lengthQuery` and a too-small buffer leave the operation active
// (answer `.lengthRequired` / `.bufferTooSmall`); success or any error ends a single-part operation
// (PKCS#11 §5.2). Input buffers are the caller's memory, valid during the one call only.
//
// The methods are grouped by the chapter of PKCS#11 v2.40 §5 they belong to, one file per chapter in API/,
// named as the ABI shims' files in Sources/TensorGuardPKCS11/EntryPoints/ are:
//
//   C_Initialize                    Module.init (this file)
//   C_Finalize, C_GetInfo           GeneralPurpose.swift
//   C_GetSlotList … C_SetPIN        SlotAndTokenManagement.swift
//   C_OpenSession … C_Logout        SessionManagement.swift (and C_SessionCancel)
//   C_CreateObject … C_Find*        ObjectManagement.swift
//   C_Encrypt*                      Encryption.swift  } their shared cipher machinery:
//   C_Decrypt*                      Decryption.swift  } Sessions/CipherCalls.swift
//   C_Digest*                       MessageDigesting.swift
//   C_Sign*, C_Verify*              SigningAndMACing.swift
//   C_GenerateKey … C_DeriveKey     KeyManagement.swift
//   C_SeedRandom, C_GenerateRandom  RandomNumberGeneration.swift
//
// Below them: Config/ (YAML), Slots/ (token state, login), Sessions/ (session table, operation slots),
// Objects/ (attribute table, templates, store access), Mechanisms/ (the registry, one file per family),
// Policy/, Audit/, Logging/.
import CP11Kit
import Synchronization
import TokenStore

public final class Module: @unchecked Sendable {
    let configuration: Configuration
    /// One per configured token, in configuration order (the slot ID is the index).
    let slots: [Slot]
    /// The tokens that could be opened.
    let tokens: [Token]
    let sessionHandles = HandleAllocator()
    let objectHandles = HandleAllocator()
    let sessions = Mutex<[CK_SESSION_HANDLE: Session]>([:])

    /// Loads the configuration (DESIGN §6): `configPath` (from C_Initialize pReserved) when given, else
    /// TENSORGUARD_PKCS11_CONF, $XDG_CONFIG_HOME/tensorguard-pkcs11/config.yaml,
    /// /etc/tensorguard-pkcs11/config.yaml, else the built-in default (one `local` token).
    ///
    /// Errors: CKR_ARGUMENTS_BAD when `configPath` names no readable file; CKR_GENERAL_ERROR for every other
    /// configuration problem (syntax, unknown key, bad value, group/world-writable file). The reason is logged
    /// (level error, stderr unless the configuration named a file). A token whose store cannot be created or
    /// opened, or whose store another token already uses, does not fail the module: its slot is listed and
    /// answers CKR_TOKEN_NOT_RECOGNIZED (`Slot.unusable`), and the reason is logged at level error.
    /// `clock`: the wall clock of key ages and creation times (`PolicyClock.system`; tests pass their own).
    public init(configPath: String?, clock: PolicyClock = .system) throws {
        Log.shared.configureFromEnvironment()
        let config: Configuration
        do {
            config = try ConfigurationLoader.load(explicitPath: configPath)
        } catch let e as ConfigurationError {
            Log.error(e.message)
            throw CKRError(e.rv)
        } catch {
            throw ErrorMap.wrap(error, context: "configuration")
        }
        Log.shared.configure(level: config.logLevel, file: config.logFile)
        Log.info("configuration from \(config.source): \(config.tokens.count) token(s)")
        var tokens: [Token] = []
        let trail: AuditTrail
        do {
            trail = try AuditTrail.make(config.audit)
            // At error level, the default: a module that leaves no trace of state changes must not do so silently.
            if let w = AuditTrail.disabledWarning(config.audit) { Log.error(w) }
        } catch let e as ConfigurationError {
            Log.error(e.message)
            throw CKRError(e.rv)
        }
        // Audit fails closed: where the log cannot be written, no token is offered (its first state change would
        // reach the store and then fail for want of its record).
        var auditProblem: String?
        do { try trail.log?.checkWritable() } catch { auditProblem = "\(error)" }
        var slots: [Slot] = []
        var storeOwners: [StoreDirectory: String] = [:]
        for (i, t) in config.tokens.enumerated() {
            let slotID = CK_SLOT_ID(i)
            do {
                if let auditProblem {
                    throw UnusableToken(slotID: slotID, config: t, reason: "the audit log cannot be written: \(auditProblem)")
                }
                let directory: StoreDirectory
                do { directory = try StoreDirectory.prepare(t.store) } catch {
                    throw UnusableToken(slotID: slotID, config: t, reason: "\(error)")
                }
                // One store, one token: a second token on the same directory would wipe the first's objects.
                if let owner = storeOwners[directory] {
                    throw UnusableToken(slotID: slotID, config: t,
                                        reason: "store \(directory.resolvedPath) is already the store of token '\(owner)'")
                }
                storeOwners[directory] = t.name
                let token = try Token(slotID: slotID, config: t, handles: objectHandles, audit: trail, clock: clock)
                tokens.append(token)
                slots.append(.usable(token))
            } catch let unusable as UnusableToken {
                Log.error("token '\(t.name)' (slot \(slotID), store \(t.store)) is not usable: \(unusable.reason)")
                slots.append(.unusable(unusable))
            }
        }
        self.configuration = config
        self.slots = slots
        self.tokens = tokens
    }
}
