// How Cryptoki opens a token's store and answers what its authentication finds (docs/storage-format.md
// §Authentication, §Rollback): the anchor from the configuration, the one kind of object that may be written
// without a login, and tampering turned into a log line, an audit record and CKR_DEVICE_ERROR.
import CP11Kit
import KeyWrap
import TokenStore

extension TokenDatabase {
    /// The token's store as the module and the operator CLI open it: its anchor in `anchorDirectory` and, when
    /// `backend` keeps anchors (`pkcs11`, `aws-kms`, `gcp-kms`, `azure-keyvault`), in the backend too.
    static func open(store: String, anchorDirectory: String?, backend: (any KeyWrapBackend)?) throws -> TokenDatabase {
        try TokenDatabase(directory: store, indexedAttributes: AttributePolicy.indexedTypes,
                          anchor: anchorDirectory.map { TokenAnchor(directory: $0, backend: backend as? any AnchorHoldingBackend) },
                          admitsUnauthenticated: StoreIntegrity.writableWithoutLogin)
    }

    static func open(_ config: TokenConfiguration, backend: any KeyWrapBackend) throws -> TokenDatabase {
        try open(store: config.store, anchorDirectory: config.anchorDirectory, backend: backend)
    }
}

enum StoreIntegrity {
    /// What a session without a login can write (PKCS#11 §4.4: public objects): a data object that is not
    /// private and has nothing sealed. Only such a row may lack a MAC; the next login authenticates it. A key
    /// always needs a login (its value is sealed), so a key row without a MAC is tampering.
    @Sendable static func writableWithoutLogin(_ stored: StoredObject) -> Bool {
        guard stored.sealedAttributes.isEmpty, let record = ObjectRecord(stored: stored) else { return false }
        return record.kind == .data && !record.isPrivate
    }
}

extension Token {
    /// Runs a store call; what fails authentication (`.tampered`, `.rollback`) is logged and audited as such
    /// before it becomes CKR_DEVICE_ERROR, and never used.
    func integrityChecked<R>(_ what: String, role: LoginRole?, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let e as StoreError {
            switch e {
            case .tampered(let why):
                reportTampering(what, why, role: role)
            case .rollback:
                Log.error("token '\(config.name)': \(what): ROLLBACK: \(e) — refused until the SO runs 'tg-pkcs11 token accept-rollback'")
                try? audit(AuditEvent(kind: .tamper, outcome: .failure, rv: ErrorMap.rv(e), role: role,
                                      reason: "\(what): \(e)"))
            default:
                throw e
            }
            throw CKRError(ErrorMap.rv(e))   // logged above: not once more by ErrorMap.wrap
        }
    }

    /// The log line and `tamper` audit record (best effort) of stored state that failed authentication.
    func reportTampering(_ what: String, _ why: String, role: LoginRole?, session: CK_SESSION_HANDLE? = nil) {
        Log.error("token '\(config.name)': \(what): TAMPERING: \(why)")
        try? audit(AuditEvent(kind: .tamper, outcome: .failure, rv: CKR_DEVICE_ERROR, role: role, session: session,
                              reason: "\(what): \(why)"))
    }
}
