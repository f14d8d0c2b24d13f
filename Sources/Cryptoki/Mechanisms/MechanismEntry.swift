import CP11Kit

/// One mechanism of `Mechanisms.registry` (Mechanisms.swift).
struct MechanismEntry: Sendable {
    let type: CK_MECHANISM_TYPE
    /// The PKCS#11 (or vendor header) name, as policies and audit records write it.
    let name: String
    let kind: MechanismKind
    let info: MechanismInfo
}
