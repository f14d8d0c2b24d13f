// C ABI shims: §5.5 slot and token management. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

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
