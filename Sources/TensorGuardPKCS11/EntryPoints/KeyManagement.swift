// C ABI shims: §5.14 key management. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_GenerateKey")
public func tgGenerateKey(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                          _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ ulCount: CK_ULONG,
                          _ phKey: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    shim { module in
        let out = try required(phKey)
        let mech = try mechanism(pMechanism)
        let attributes = try template(pTemplate, ulCount)
        out.pointee = try module.generateKey(hSession, mechanism: mech, template: attributes)
    }
}

@_cdecl("C_GenerateKeyPair")
public func tgGenerateKeyPair(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                              _ pPublicKeyTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ ulPublicKeyAttributeCount: CK_ULONG,
                              _ pPrivateKeyTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ ulPrivateKeyAttributeCount: CK_ULONG,
                              _ phPublicKey: UnsafeMutablePointer<CK_OBJECT_HANDLE>?,
                              _ phPrivateKey: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    shim { module in
        _ = try required(phPublicKey)
        _ = try required(phPrivateKey)
        // No mechanism generates key pairs: its type alone decides (CKR_MECHANISM_INVALID), not its parameter.
        let type = try required(pMechanism).pointee.mechanism
        _ = try template(pPublicKeyTemplate, ulPublicKeyAttributeCount)
        _ = try template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)
        try module.generateKeyPair(hSession, mechanism: Mechanism(type: type))
    }
}

@_cdecl("C_WrapKey")
public func tgWrapKey(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                      _ hWrappingKey: CK_OBJECT_HANDLE, _ hKey: CK_OBJECT_HANDLE,
                      _ pWrappedKey: UnsafeMutablePointer<CK_BYTE>?,
                      _ pulWrappedKeyLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim { module in
        let outLen = try required(pulWrappedKeyLen)
        let mech = try mechanism(pMechanism)
        try finish(module.wrapKey(hSession, mechanism: mech, wrappingKey: hWrappingKey, key: hKey,
                                  output: output(pWrappedKey, outLen)), outLen)
    }
}

@_cdecl("C_UnwrapKey")
public func tgUnwrapKey(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                        _ hUnwrappingKey: CK_OBJECT_HANDLE, _ pWrappedKey: UnsafeMutablePointer<CK_BYTE>?,
                        _ ulWrappedKeyLen: CK_ULONG, _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?,
                        _ ulAttributeCount: CK_ULONG, _ phKey: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    shim { module in
        let out = try required(phKey)
        let mech = try mechanism(pMechanism)
        let wrapped = try input(pWrappedKey, ulWrappedKeyLen)
        let attributes = try template(pTemplate, ulAttributeCount)
        out.pointee = try module.unwrapKey(hSession, mechanism: mech, unwrappingKey: hUnwrappingKey,
                                           wrappedKey: wrapped, template: attributes)
    }
}

@_cdecl("C_DeriveKey")
public func tgDeriveKey(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                        _ hBaseKey: CK_OBJECT_HANDLE, _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?,
                        _ ulAttributeCount: CK_ULONG, _ phKey: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    shim { module in
        _ = try required(phKey)
        // No mechanism derives keys: its type alone decides (CKR_MECHANISM_INVALID), not its parameter.
        let type = try required(pMechanism).pointee.mechanism
        _ = try template(pTemplate, ulAttributeCount)
        try module.deriveKey(hSession, mechanism: Mechanism(type: type), baseKey: hBaseKey)
    }
}
