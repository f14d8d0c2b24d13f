import KeyWrap

/// A login role. Raw values are what the database stores.
public enum Role: String, Sendable, CaseIterable, Equatable {
    case so
    case user
}

/// Retry-counter state of one role's PIN, for CK_TOKEN_INFO flags.
public struct PINStatus: Sendable, Equatable {
    /// A PIN envelope exists for the role.
    public var isSet: Bool
    /// Consecutive failed attempts since the last success.
    public var failedAttempts: Int
    /// Attempts allowed before lockout.
    public var maxAttempts: Int

    public init(isSet: Bool, failedAttempts: Int, maxAttempts: Int) {
        self.isSet = isSet
        self.failedAttempts = failedAttempts
        self.maxAttempts = maxAttempts
    }

    public var remainingAttempts: Int {
        let (r, overflow) = maxAttempts.subtractingReportingOverflow(failedAttempts)
        return overflow ? 0 : max(0, r)
    }
    /// CKF_*_PIN_LOCKED.
    public var isLocked: Bool { isSet && failedAttempts >= maxAttempts }
    /// CKF_*_PIN_FINAL_TRY.
    public var isFinalTry: Bool { isSet && !isLocked && remainingAttempts == 1 }
    /// CKF_*_PIN_COUNT_LOW (at least one failure since the last success, not yet locked).
    public var isCountLow: Bool { isSet && !isLocked && failedAttempts > 0 }
}

/// The token row as stored. Cryptoki maps it onto CK_TOKEN_INFO.
public struct TokenRecord: Sendable, Equatable {
    /// C_InitToken has run.
    public var isInitialized: Bool
    /// 32 bytes, blank padded (CK_TOKEN_INFO.label). All blanks before initialisation.
    public var label: [UInt8]
    /// 16 characters (uppercase hex), random at each initialisation; "" before.
    public var serialNumber: String
    /// Random identity created at initialisation (32 hex chars); "" before.
    public var tokenUUID: String
    /// Opaque flag bits owned by the caller (e.g. CKF_USER_PIN_TO_BE_CHANGED); the store only persists them.
    public var flags: UInt64
    public var soPIN: PINStatus
    public var userPIN: PINStatus
    /// The backend that wrapped the root key; nil before initialisation.
    public var backend: BackendDescriptor?
    /// Storage format version of the file (see docs/storage-format.md).
    public var formatVersion: Int

    /// The context backends bind the root key to.
    public var wrapContext: WrapContext { WrapContext(tokenSerial: serialNumber, tokenUUID: tokenUUID) }

    public func pinStatus(_ role: Role) -> PINStatus { role == .so ? soPIN : userPIN }
}
