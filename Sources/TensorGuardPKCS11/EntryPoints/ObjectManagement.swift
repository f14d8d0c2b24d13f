// C ABI shims: §5.7 object management. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_CreateObject")
public func tgCreateObject(_ hSession: CK_SESSION_HANDLE, _ pTemplate: UnsafeMutablePointer<CK_ATTRIBUTE>?,
                           _ ulCount: CK_ULONG, _ phObject: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    shim { module in
        let out = try required(phObject)
        var attributes = try template(pTemplate, ulCount)
        defer { wipeValues(&attributes) }
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
