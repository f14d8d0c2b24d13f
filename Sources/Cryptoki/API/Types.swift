// The vocabulary the C ABI layer and Cryptoki share. Plain Swift values: the ABI converts C structures
// into these and back; nothing here points into caller memory except the raw buffers of one call.
import CP11Kit
import CryptoCore

/// A PKCS#11 failure: every error leaving Cryptoki carries the CK_RV the standard names.
public struct CKRError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rv: CK_RV
    /// With CKR_PIN_INCORRECT: the role's consecutive failed attempts, this one included, for its audit record.
    /// Not part of equality: two errors are the same when they answer the same CK_RV.
    public let failedPINAttempts: Int?
    public init(_ rv: CK_RV, failedPINAttempts: Int? = nil) {
        self.rv = rv
        self.failedPINAttempts = failedPINAttempts
    }
    public var description: String { "CK_RV 0x" + String(rv, radix: 16) }
    public static func == (a: CKRError, b: CKRError) -> Bool { a.rv == b.rv }
    public func hash(into h: inout Hasher) { h.combine(rv) }
}

/// One attribute of a template or an object. Array attributes (CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE,
/// CKA_DERIVE_TEMPLATE) carry a nested template; every other attribute carries bytes as the C API does.
public enum AttributeValue: Equatable, Hashable, Sendable {
    case bytes([UInt8])
    case template([Attribute])
}

public struct Attribute: Equatable, Hashable, Sendable {
    public var type: CK_ATTRIBUTE_TYPE
    public var value: AttributeValue
    public init(type: CK_ATTRIBUTE_TYPE, value: AttributeValue) { self.type = type; self.value = value }
    public init(type: CK_ATTRIBUTE_TYPE, bytes: [UInt8]) { self.init(type: type, value: .bytes(bytes)) }
}

/// Answer for one attribute of C_GetAttributeValue; the ABI folds these into the call's CK_RV
/// (CKR_ATTRIBUTE_SENSITIVE / CKR_ATTRIBUTE_TYPE_INVALID / CKR_BUFFER_TOO_SMALL) as PKCS#11 §5.7 says.
public enum AttributeQueryResult: Equatable, Sendable {
    case value(AttributeValue)
    /// A sealed value the caller may read (an extractable, non-sensitive CKA_VALUE), as `Token.secret` returned it
    /// (the token cache's locked copy, or a fresh unsealed one wiped when the answer is released): never an array;
    /// the only other copy is the one the ABI writes into the caller's template.
    case secret(SecretBytes)
    case sensitive
    case typeInvalid
}

/// Mechanism parameters, decoded by the ABI from pParameter/ulParameterLen according to the mechanism type.
public enum MechanismParameter: Equatable, Sendable {
    case none
    /// Raw parameter bytes (an IV for CBC modes, an optional IV for key wrap, ...).
    case bytes([UInt8])
    /// CK_GCM_PARAMS.
    case gcm(iv: [UInt8], aad: [UInt8], tagBits: UInt)
}

public struct Mechanism: Equatable, Sendable {
    public var type: CK_MECHANISM_TYPE
    public var parameter: MechanismParameter
    public init(type: CK_MECHANISM_TYPE, parameter: MechanismParameter = .none) {
        self.type = type; self.parameter = parameter
    }
}

/// Where an operation's output goes: PKCS#11 §5.2 — a NULL buffer asks for the length only.
/// The buffer is the caller's memory, valid during the one call only.
public enum OutputBuffer {
    case lengthQuery
    case buffer(UnsafeMutableRawBufferPointer)
}

/// What an output-producing call did. `.lengthRequired` and `.bufferTooSmall` keep the operation active
/// (the caller will call again); `.written` ends a single-part operation.
public enum OutputResult: Equatable, Sendable {
    case lengthRequired(Int)
    case bufferTooSmall(required: Int)
    case written(Int)
}

public struct Version: Equatable, Sendable {
    public var major: UInt8
    public var minor: UInt8
    public init(_ major: UInt8, _ minor: UInt8) { self.major = major; self.minor = minor }
}

/// Texts are unpadded Swift strings; the ABI blank-pads them to the fixed C field widths (and truncates).
public struct ModuleInfo: Equatable, Sendable {
    public var cryptokiVersion: Version
    public var manufacturerID: String
    public var flags: CK_FLAGS
    public var libraryDescription: String
    public var libraryVersion: Version
}

public struct SlotInfo: Equatable, Sendable {
    public var slotDescription: String
    public var manufacturerID: String
    public var flags: CK_FLAGS
    public var hardwareVersion: Version
    public var firmwareVersion: Version
}

public struct TokenInfo: Equatable, Sendable {
    public var label: String
    public var manufacturerID: String
    public var model: String
    public var serialNumber: String
    public var flags: CK_FLAGS
    public var maxSessionCount: CK_ULONG
    public var sessionCount: CK_ULONG
    public var maxRwSessionCount: CK_ULONG
    public var rwSessionCount: CK_ULONG
    public var maxPinLen: CK_ULONG
    public var minPinLen: CK_ULONG
    public var totalPublicMemory: CK_ULONG
    public var freePublicMemory: CK_ULONG
    public var totalPrivateMemory: CK_ULONG
    public var freePrivateMemory: CK_ULONG
    public var hardwareVersion: Version
    public var firmwareVersion: Version
    /// 16 characters YYYYMMDDhhmmss00 (the token has a clock: CKF_CLOCK_ON_TOKEN).
    public var utcTime: String
}

public struct MechanismInfo: Equatable, Sendable {
    public var minKeySize: CK_ULONG
    public var maxKeySize: CK_ULONG
    public var flags: CK_FLAGS
}

public struct SessionInfo: Equatable, Sendable {
    public var slotID: CK_SLOT_ID
    public var state: CK_STATE
    public var flags: CK_FLAGS
    public var deviceError: CK_ULONG
}
