// The C ABI: one @_cdecl shim per PKCS#11 entry point, in the order of the 3.0 function list.
// C_GetFunctionList, C_GetInterfaceList and C_GetInterface are C (Sources/CPKCS11/function_tables.c).
//
// Every shim has one shape (Marshal.swift): initialised? → pointers → Swift values → one Module call →
// outputs / CK_RV. Swift names carry a `tg` prefix so they never shadow the header's C prototypes.
import CP11Kit
import Cryptoki

// MARK: General purpose

@_cdecl("C_Initialize")
public func tgInitialize(_ pInitArgs: UnsafeMutableRawPointer?) -> CK_RV {
    initialize(pInitArgs)
}

@_cdecl("C_Finalize")
public func tgFinalize(_ pReserved: UnsafeMutableRawPointer?) -> CK_RV {
    finalize(pReserved)
}

@_cdecl("C_GetInfo")
public func tgGetInfo(_ pInfo: UnsafeMutablePointer<CK_INFO>?) -> CK_RV {
    shim { module in
        let out = try required(pInfo)
        let info = module.info
        var result = CK_INFO()
        result.cryptokiVersion = ckVersion(info.cryptokiVersion)
        pad(&result.manufacturerID, info.manufacturerID)
        result.flags = info.flags
        pad(&result.libraryDescription, info.libraryDescription)
        result.libraryVersion = ckVersion(info.libraryVersion)
        out.pointee = result
    }
}

// MARK: Slots and tokens

@_cdecl("C_GetSlotList")
public func tgGetSlotList(_ tokenPresent: CK_BBOOL, _ pSlotList: UnsafeMutablePointer<CK_SLOT_ID>?,
                          _ pulCount: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim { module in
        let count = try required(pulCount)
        try writeList(module.slotList(tokenPresent: tokenPresent != CK_BBOOL(CK_FALSE)), pSlotList, count)
    }
}

@_cdecl("C_GetSlotInfo")
public func tgGetSlotInfo(_ slotID: CK_SLOT_ID, _ pInfo: UnsafeMutablePointer<CK_SLOT_INFO>?) -> CK_RV {
    shim { module in
        let out = try required(pInfo)
        let info = try module.slotInfo(slotID)
        var result = CK_SLOT_INFO()
        pad(&result.slotDescription, info.slotDescription)
        pad(&result.manufacturerID, info.manufacturerID)
        result.flags = info.flags
        result.hardwareVersion = ckVersion(info.hardwareVersion)
        result.firmwareVersion = ckVersion(info.firmwareVersion)
        out.pointee = result
    }
}

@_cdecl("C_GetTokenInfo")
public func tgGetTokenInfo(_ slotID: CK_SLOT_ID, _ pInfo: UnsafeMutablePointer<CK_TOKEN_INFO>?) -> CK_RV {
    shim { module in
        let out = try required(pInfo)
        let info = try module.tokenInfo(slotID)
        var result = CK_TOKEN_INFO()
        pad(&result.label, info.label)
        pad(&result.manufacturerID, info.manufacturerID)
        pad(&result.model, info.model)
        pad(&result.serialNumber, info.serialNumber)
        result.flags = info.flags
        result.ulMaxSessionCount = info.maxSessionCount
        result.ulSessionCount = info.sessionCount
        result.ulMaxRwSessionCount = info.maxRwSessionCount
        result.ulRwSessionCount = info.rwSessionCount
        result.ulMaxPinLen = info.maxPinLen
        result.ulMinPinLen = info.minPinLen
        result.ulTotalPublicMemory = info.totalPublicMemory
        result.ulFreePublicMemory = info.freePublicMemory
        result.ulTotalPrivateMemory = info.totalPrivateMemory
        result.ulFreePrivateMemory = info.freePrivateMemory
        result.hardwareVersion = ckVersion(info.hardwareVersion)
        result.firmwareVersion = ckVersion(info.firmwareVersion)
        pad(&result.utcTime, info.utcTime)
        out.pointee = result
    }
}

@_cdecl("C_GetMechanismList")
public func tgGetMechanismList(_ slotID: CK_SLOT_ID, _ pMechanismList: UnsafeMutablePointer<CK_MECHANISM_TYPE>?,
                               _ pulCount: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim { module in
        let count = try required(pulCount)
        try writeList(module.mechanismList(slotID), pMechanismList, count)
    }
}

@_cdecl("C_GetMechanismInfo")
public func tgGetMechanismInfo(_ slotID: CK_SLOT_ID, _ type: CK_MECHANISM_TYPE,
                               _ pInfo: UnsafeMutablePointer<CK_MECHANISM_INFO>?) -> CK_RV {
    shim { module in
        let out = try required(pInfo)
        let info = try module.mechanismInfo(slotID, type)
        var result = CK_MECHANISM_INFO()
        result.ulMinKeySize = info.minKeySize
        result.ulMaxKeySize = info.maxKeySize
        result.flags = info.flags
        out.pointee = result
    }
}

@_cdecl("C_InitToken")
public func tgInitToken(_ slotID: CK_SLOT_ID, _ pPin: UnsafeMutablePointer<CK_UTF8CHAR>?, _ ulPinLen: CK_ULONG,
                        _ pLabel: UnsafeMutablePointer<CK_UTF8CHAR>?) -> CK_RV {
    shim { module in
        let soPIN = try pin(pPin, ulPinLen)
        let label = Array(UnsafeBufferPointer(start: try required(pLabel), count: 32))
        try module.initToken(slotID, soPIN: soPIN, label: label)
    }
}

@_cdecl("C_InitPIN")
public func tgInitPIN(_ hSession: CK_SESSION_HANDLE, _ pPin: UnsafeMutablePointer<CK_UTF8CHAR>?,
                      _ ulPinLen: CK_ULONG) -> CK_RV {
    shim { module in
        try module.initPIN(hSession, pin: pin(pPin, ulPinLen))
    }
}

@_cdecl("C_SetPIN")
public func tgSetPIN(_ hSession: CK_SESSION_HANDLE, _ pOldPin: UnsafeMutablePointer<CK_UTF8CHAR>?, _ ulOldLen: CK_ULONG,
                     _ pNewPin: UnsafeMutablePointer<CK_UTF8CHAR>?, _ ulNewLen: CK_ULONG) -> CK_RV {
    shim { module in
        let oldPIN = try pin(pOldPin, ulOldLen)
        let newPIN = try pin(pNewPin, ulNewLen)
        try module.setPIN(hSession, oldPIN: oldPIN, newPIN: newPIN)
    }
}

// MARK: Sessions

@_cdecl("C_OpenSession")
public func tgOpenSession(_ slotID: CK_SLOT_ID, _ flags: CK_FLAGS, _ pApplication: UnsafeMutableRawPointer?,
                          _ notify: CK_NOTIFY?, _ phSession: UnsafeMutablePointer<CK_SESSION_HANDLE>?) -> CK_RV {
    // pApplication / notify: the module never calls back (no surrender notifications).
    shim { module in
        let out = try required(phSession)
        out.pointee = try module.openSession(slotID, flags: flags)
    }
}

@_cdecl("C_CloseSession")
public func tgCloseSession(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    shim { module in try module.closeSession(hSession) }
}

@_cdecl("C_CloseAllSessions")
public func tgCloseAllSessions(_ slotID: CK_SLOT_ID) -> CK_RV {
    shim { module in try module.closeAllSessions(slotID) }
}

@_cdecl("C_GetSessionInfo")
public func tgGetSessionInfo(_ hSession: CK_SESSION_HANDLE, _ pInfo: UnsafeMutablePointer<CK_SESSION_INFO>?) -> CK_RV {
    shim { module in
        let out = try required(pInfo)
        let info = try module.sessionInfo(hSession)
        var result = CK_SESSION_INFO()
        result.slotID = info.slotID
        result.state = info.state
        result.flags = info.flags
        result.ulDeviceError = info.deviceError
        out.pointee = result
    }
}

@_cdecl("C_GetOperationState")
public func tgGetOperationState(_ hSession: CK_SESSION_HANDLE, _ pOperationState: UnsafeMutablePointer<CK_BYTE>?,
                                _ pulOperationStateLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_SetOperationState")
public func tgSetOperationState(_ hSession: CK_SESSION_HANDLE, _ pOperationState: UnsafeMutablePointer<CK_BYTE>?,
                                _ ulOperationStateLen: CK_ULONG, _ hEncryptionKey: CK_OBJECT_HANDLE,
                                _ hAuthenticationKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_Login")
public func tgLogin(_ hSession: CK_SESSION_HANDLE, _ userType: CK_USER_TYPE, _ pPin: UnsafeMutablePointer<CK_UTF8CHAR>?,
                    _ ulPinLen: CK_ULONG) -> CK_RV {
    shim { module in
        try module.login(hSession, userType: userType, pin: pin(pPin, ulPinLen))
    }
}

@_cdecl("C_Logout")
public func tgLogout(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    shim { module in try module.logout(hSession) }
}

// MARK: Objects

@_cdecl("C_CreateObject")
public func tgCreateObject(_ hSession: CK_SESSION_HANDLE, _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?,
                           _ ulCount: CK_ULONG, _ phObject: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    shim { module in
        let out = try required(phObject)
        let attributes = try template(pTemplate, ulCount)
        out.pointee = try module.createObject(hSession, template: attributes)
    }
}

@_cdecl("C_CopyObject")
public func tgCopyObject(_ hSession: CK_SESSION_HANDLE, _ hObject: CK_OBJECT_HANDLE,
                         _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ ulCount: CK_ULONG,
                         _ phNewObject: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    shim { module in
        let out = try required(phNewObject)
        let attributes = try template(pTemplate, ulCount)
        out.pointee = try module.copyObject(hSession, hObject, template: attributes)
    }
}

@_cdecl("C_DestroyObject")
public func tgDestroyObject(_ hSession: CK_SESSION_HANDLE, _ hObject: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.destroyObject(hSession, hObject) }
}

@_cdecl("C_GetObjectSize")
public func tgGetObjectSize(_ hSession: CK_SESSION_HANDLE, _ hObject: CK_OBJECT_HANDLE,
                            _ pulSize: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim { module in
        let out = try required(pulSize)
        out.pointee = try module.objectSize(hSession, hObject)
    }
}

@_cdecl("C_GetAttributeValue")
public func tgGetAttributeValue(_ hSession: CK_SESSION_HANDLE, _ hObject: CK_OBJECT_HANDLE,
                                _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ ulCount: CK_ULONG) -> CK_RV {
    shim { module in
        let n = try length(ulCount)
        guard n <= maxTemplateCount else { throw argumentsBad }
        guard let start = pTemplate else {
            if n == 0 {
                // Nothing asked: still answers for the session and object handles.
                _ = try module.attributeValues(hSession, hObject, types: [])
                return
            }
            throw argumentsBad
        }
        let types = (0..<n).map { start[$0].type }
        let results = try module.attributeValues(hSession, hObject, types: types)
        guard results.count == n else { throw CKRError(CKR_GENERAL_ERROR) }
        let rv = writeAttributeValues(results, into: start)
        if rv != CKR_OK { throw CKRError(rv) }
    }
}

@_cdecl("C_SetAttributeValue")
public func tgSetAttributeValue(_ hSession: CK_SESSION_HANDLE, _ hObject: CK_OBJECT_HANDLE,
                                _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ ulCount: CK_ULONG) -> CK_RV {
    shim { module in
        try module.setAttributeValues(hSession, hObject, template: template(pTemplate, ulCount))
    }
}

@_cdecl("C_FindObjectsInit")
public func tgFindObjectsInit(_ hSession: CK_SESSION_HANDLE, _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?,
                              _ ulCount: CK_ULONG) -> CK_RV {
    shim { module in
        try module.findObjectsInit(hSession, template: template(pTemplate, ulCount))
    }
}

@_cdecl("C_FindObjects")
public func tgFindObjects(_ hSession: CK_SESSION_HANDLE, _ phObject: UnsafeMutablePointer<CK_OBJECT_HANDLE>?,
                          _ ulMaxObjectCount: CK_ULONG, _ pulObjectCount: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim { module in
        let objects = try required(phObject)
        let count = try required(pulObjectCount)
        // The caller's array size: any value is legal, so clamp rather than reject.
        let maxCount = Int(clamping: ulMaxObjectCount)
        let found = try module.findObjects(hSession, maxCount: maxCount)
        guard found.count <= maxCount else { throw CKRError(CKR_GENERAL_ERROR) }
        for (index, handle) in found.enumerated() { objects[index] = handle }
        count.pointee = ulong(found.count)
    }
}

@_cdecl("C_FindObjectsFinal")
public func tgFindObjectsFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    shim { module in try module.findObjectsFinal(hSession) }
}

// MARK: Encryption

@_cdecl("C_EncryptInit")
public func tgEncryptInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                          _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.encryptInit(hSession, mechanism: mechanism(pMechanism), key: hKey) }
}

@_cdecl("C_Encrypt")
public func tgEncrypt(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                      _ pEncryptedData: UnsafeMutablePointer<CK_BYTE>?,
                      _ pulEncryptedDataLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_ENCRYPT, hSession) { module in
        let outLen = try required(pulEncryptedDataLen)
        let data = try input(pData, ulDataLen)
        try finish(module.encrypt(hSession, input: data, output: output(pEncryptedData, outLen)), outLen)
    }
}

@_cdecl("C_EncryptUpdate")
public func tgEncryptUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?, _ ulPartLen: CK_ULONG,
                            _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                            _ pulEncryptedPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_ENCRYPT, hSession) { module in
        let outLen = try required(pulEncryptedPartLen)
        let part = try input(pPart, ulPartLen)
        try finish(module.encryptUpdate(hSession, input: part, output: output(pEncryptedPart, outLen)), outLen)
    }
}

@_cdecl("C_EncryptFinal")
public func tgEncryptFinal(_ hSession: CK_SESSION_HANDLE, _ pLastEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                           _ pulLastEncryptedPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_ENCRYPT, hSession) { module in
        let outLen = try required(pulLastEncryptedPartLen)
        try finish(module.encryptFinal(hSession, output: output(pLastEncryptedPart, outLen)), outLen)
    }
}

// MARK: Decryption

@_cdecl("C_DecryptInit")
public func tgDecryptInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                          _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.decryptInit(hSession, mechanism: mechanism(pMechanism), key: hKey) }
}

@_cdecl("C_Decrypt")
public func tgDecrypt(_ hSession: CK_SESSION_HANDLE, _ pEncryptedData: UnsafeMutablePointer<CK_BYTE>?,
                      _ ulEncryptedDataLen: CK_ULONG, _ pData: UnsafeMutablePointer<CK_BYTE>?,
                      _ pulDataLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DECRYPT, hSession) { module in
        let outLen = try required(pulDataLen)
        let data = try input(pEncryptedData, ulEncryptedDataLen)
        try finish(module.decrypt(hSession, input: data, output: output(pData, outLen)), outLen)
    }
}

@_cdecl("C_DecryptUpdate")
public func tgDecryptUpdate(_ hSession: CK_SESSION_HANDLE, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                            _ ulEncryptedPartLen: CK_ULONG, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                            _ pulPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DECRYPT, hSession) { module in
        let outLen = try required(pulPartLen)
        let part = try input(pEncryptedPart, ulEncryptedPartLen)
        try finish(module.decryptUpdate(hSession, input: part, output: output(pPart, outLen)), outLen)
    }
}

@_cdecl("C_DecryptFinal")
public func tgDecryptFinal(_ hSession: CK_SESSION_HANDLE, _ pLastPart: UnsafeMutablePointer<CK_BYTE>?,
                           _ pulLastPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DECRYPT, hSession) { module in
        let outLen = try required(pulLastPartLen)
        try finish(module.decryptFinal(hSession, output: output(pLastPart, outLen)), outLen)
    }
}

// MARK: Digests

@_cdecl("C_DigestInit")
public func tgDigestInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?) -> CK_RV {
    shim { module in try module.digestInit(hSession, mechanism: mechanism(pMechanism)) }
}

@_cdecl("C_Digest")
public func tgDigest(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                     _ pDigest: UnsafeMutablePointer<CK_BYTE>?, _ pulDigestLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DIGEST, hSession) { module in
        let outLen = try required(pulDigestLen)
        let data = try input(pData, ulDataLen)
        try finish(module.digest(hSession, input: data, output: output(pDigest, outLen)), outLen)
    }
}

@_cdecl("C_DigestUpdate")
public func tgDigestUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                           _ ulPartLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_DIGEST, hSession) { module in try module.digestUpdate(hSession, input: input(pPart, ulPartLen)) }
}

@_cdecl("C_DigestKey")
public func tgDigestKey(_ hSession: CK_SESSION_HANDLE, _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.digestKey(hSession, key: hKey) }
}

@_cdecl("C_DigestFinal")
public func tgDigestFinal(_ hSession: CK_SESSION_HANDLE, _ pDigest: UnsafeMutablePointer<CK_BYTE>?,
                          _ pulDigestLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DIGEST, hSession) { module in
        let outLen = try required(pulDigestLen)
        try finish(module.digestFinal(hSession, output: output(pDigest, outLen)), outLen)
    }
}

// MARK: Signatures and MACs

@_cdecl("C_SignInit")
public func tgSignInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                       _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.signInit(hSession, mechanism: mechanism(pMechanism), key: hKey) }
}

@_cdecl("C_Sign")
public func tgSign(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                   _ pSignature: UnsafeMutablePointer<CK_BYTE>?, _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_SIGN, hSession) { module in
        let outLen = try required(pulSignatureLen)
        let data = try input(pData, ulDataLen)
        try finish(module.sign(hSession, input: data, output: output(pSignature, outLen)), outLen)
    }
}

@_cdecl("C_SignUpdate")
public func tgSignUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                         _ ulPartLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_SIGN, hSession) { module in try module.signUpdate(hSession, input: input(pPart, ulPartLen)) }
}

@_cdecl("C_SignFinal")
public func tgSignFinal(_ hSession: CK_SESSION_HANDLE, _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                        _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_SIGN, hSession) { module in
        let outLen = try required(pulSignatureLen)
        try finish(module.signFinal(hSession, output: output(pSignature, outLen)), outLen)
    }
}

@_cdecl("C_SignRecoverInit")
public func tgSignRecoverInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                              _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignRecover")
public func tgSignRecover(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                          _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                          _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyInit")
public func tgVerifyInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                         _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.verifyInit(hSession, mechanism: mechanism(pMechanism), key: hKey) }
}

@_cdecl("C_Verify")
public func tgVerify(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                     _ pSignature: UnsafeMutablePointer<CK_BYTE>?, _ ulSignatureLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_VERIFY, hSession) { module in
        let data = try input(pData, ulDataLen)
        let signature = try input(pSignature, ulSignatureLen)
        try module.verify(hSession, input: data, signature: signature)
    }
}

@_cdecl("C_VerifyUpdate")
public func tgVerifyUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                           _ ulPartLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_VERIFY, hSession) { module in try module.verifyUpdate(hSession, input: input(pPart, ulPartLen)) }
}

@_cdecl("C_VerifyFinal")
public func tgVerifyFinal(_ hSession: CK_SESSION_HANDLE, _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                          _ ulSignatureLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_VERIFY, hSession) { module in try module.verifyFinal(hSession, signature: input(pSignature, ulSignatureLen)) }
}

@_cdecl("C_VerifyRecoverInit")
public func tgVerifyRecoverInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                                _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyRecover")
public func tgVerifyRecover(_ hSession: CK_SESSION_HANDLE, _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                            _ ulSignatureLen: CK_ULONG, _ pData: UnsafeMutablePointer<CK_BYTE>?,
                            _ pulDataLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

// MARK: Dual-function operations (not supported)

@_cdecl("C_DigestEncryptUpdate")
public func tgDigestEncryptUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulPartLen: CK_ULONG, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ pulEncryptedPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptDigestUpdate")
public func tgDecryptDigestUpdate(_ hSession: CK_SESSION_HANDLE, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulEncryptedPartLen: CK_ULONG, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ pulPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignEncryptUpdate")
public func tgSignEncryptUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                                _ ulPartLen: CK_ULONG, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                                _ pulEncryptedPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptVerifyUpdate")
public func tgDecryptVerifyUpdate(_ hSession: CK_SESSION_HANDLE, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulEncryptedPartLen: CK_ULONG, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ pulPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

// MARK: Keys

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

// MARK: Random numbers

@_cdecl("C_SeedRandom")
public func tgSeedRandom(_ hSession: CK_SESSION_HANDLE, _ pSeed: UnsafeMutablePointer<CK_BYTE>?,
                         _ ulSeedLen: CK_ULONG) -> CK_RV {
    shim { module in try module.seedRandom(hSession, seed: input(pSeed, ulSeedLen)) }
}

@_cdecl("C_GenerateRandom")
public func tgGenerateRandom(_ hSession: CK_SESSION_HANDLE, _ pRandomData: UnsafeMutablePointer<CK_BYTE>?,
                             _ ulRandomLen: CK_ULONG) -> CK_RV {
    shim { module in
        let n = try length(ulRandomLen)
        guard n <= maxDataLength else { throw argumentsBad }
        let buffer = n == 0 ? UnsafeMutableRawBufferPointer(start: nil, count: 0)
                            : UnsafeMutableRawBufferPointer(start: try required(pRandomData), count: n)
        try module.generateRandom(hSession, into: buffer)
    }
}

// MARK: Parallel function management (legacy) and slot events

@_cdecl("C_GetFunctionStatus")
public func tgGetFunctionStatus(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported(CKR_FUNCTION_NOT_PARALLEL)
}

@_cdecl("C_CancelFunction")
public func tgCancelFunction(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported(CKR_FUNCTION_NOT_PARALLEL)
}

@_cdecl("C_WaitForSlotEvent")
public func tgWaitForSlotEvent(_ flags: CK_FLAGS, _ pSlot: UnsafeMutablePointer<CK_SLOT_ID>?,
                               _ pReserved: UnsafeMutableRawPointer?) -> CK_RV {
    unsupported()
}

// MARK: PKCS#11 3.0

@_cdecl("C_LoginUser")
public func tgLoginUser(_ hSession: CK_SESSION_HANDLE, _ userType: CK_USER_TYPE, _ pPin: UnsafeMutablePointer<CK_UTF8CHAR>?,
                        _ ulPinLen: CK_ULONG, _ pUsername: UnsafeMutablePointer<CK_UTF8CHAR>?,
                        _ ulUsernameLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_SessionCancel")
public func tgSessionCancel(_ hSession: CK_SESSION_HANDLE, _ flags: CK_FLAGS) -> CK_RV {
    shim { module in try module.cancelOperations(hSession, flags: flags) }
}

@_cdecl("C_MessageEncryptInit")
public func tgMessageEncryptInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                                 _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_EncryptMessage")
public func tgEncryptMessage(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                             _ pAssociatedData: UnsafeMutablePointer<CK_BYTE>?, _ ulAssociatedDataLen: CK_ULONG,
                             _ pPlaintext: UnsafeMutablePointer<CK_BYTE>?, _ ulPlaintextLen: CK_ULONG,
                             _ pCiphertext: UnsafeMutablePointer<CK_BYTE>?,
                             _ pulCiphertextLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_EncryptMessageBegin")
public func tgEncryptMessageBegin(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                  _ ulParameterLen: CK_ULONG, _ pAssociatedData: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulAssociatedDataLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_EncryptMessageNext")
public func tgEncryptMessageNext(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                 _ ulParameterLen: CK_ULONG, _ pPlaintextPart: UnsafeMutablePointer<CK_BYTE>?,
                                 _ ulPlaintextPartLen: CK_ULONG, _ pCiphertextPart: UnsafeMutablePointer<CK_BYTE>?,
                                 _ pulCiphertextPartLen: UnsafeMutablePointer<CK_ULONG>?, _ flags: CK_FLAGS) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageEncryptFinal")
public func tgMessageEncryptFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageDecryptInit")
public func tgMessageDecryptInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                                 _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptMessage")
public func tgDecryptMessage(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                             _ pAssociatedData: UnsafeMutablePointer<CK_BYTE>?, _ ulAssociatedDataLen: CK_ULONG,
                             _ pCiphertext: UnsafeMutablePointer<CK_BYTE>?, _ ulCiphertextLen: CK_ULONG,
                             _ pPlaintext: UnsafeMutablePointer<CK_BYTE>?,
                             _ pulPlaintextLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptMessageBegin")
public func tgDecryptMessageBegin(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                  _ ulParameterLen: CK_ULONG, _ pAssociatedData: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulAssociatedDataLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptMessageNext")
public func tgDecryptMessageNext(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                 _ ulParameterLen: CK_ULONG, _ pCiphertextPart: UnsafeMutablePointer<CK_BYTE>?,
                                 _ ulCiphertextPartLen: CK_ULONG, _ pPlaintextPart: UnsafeMutablePointer<CK_BYTE>?,
                                 _ pulPlaintextPartLen: UnsafeMutablePointer<CK_ULONG>?, _ flags: CK_FLAGS) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageDecryptFinal")
public func tgMessageDecryptFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageSignInit")
public func tgMessageSignInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                              _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignMessage")
public func tgSignMessage(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                          _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                          _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                          _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignMessageBegin")
public func tgSignMessageBegin(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                               _ ulParameterLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignMessageNext")
public func tgSignMessageNext(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                              _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                              _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                              _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageSignFinal")
public func tgMessageSignFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageVerifyInit")
public func tgMessageVerifyInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                                _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyMessage")
public func tgVerifyMessage(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                            _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                            _ pSignature: UnsafeMutablePointer<CK_BYTE>?, _ ulSignatureLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyMessageBegin")
public func tgVerifyMessageBegin(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                 _ ulParameterLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyMessageNext")
public func tgVerifyMessageNext(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                                _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                                _ pSignature: UnsafeMutablePointer<CK_BYTE>?, _ ulSignatureLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageVerifyFinal")
public func tgMessageVerifyFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported()
}
