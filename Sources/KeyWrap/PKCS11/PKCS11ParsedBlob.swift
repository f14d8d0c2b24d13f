/// The parsed frame of a version-1 `pkcs11` blob (PKCS11Backend.swift describes it; BlobFrame.swift the frame).
struct PKCS11ParsedBlob {
    let mechanism: PKCS11WrapMechanism
    let kek: PKCS11KEKReference
    /// version, mechanism and KEK reference: what AES-GCM's AAD covers.
    let header: [UInt8]
    let payload: [UInt8]
    /// The whole frame, for the mac check.
    let frame: BlobReader

    init(_ blob: [UInt8]) throws {
        guard var frame = BlobReader(blob, version: PKCS11Backend.blobVersion, macLength: BlobMAC.length),
              let mechanism = frame.byte().flatMap(PKCS11WrapMechanism.init(blobID:)),
              let refKind = frame.byte(), let ref = frame.field(),
              let kek = PKCS11KEKReference(kind: refKind, bytes: ref) else { throw KeyWrapError.integrityFailure }
        let header = Array(frame.prefixRead)
        guard let payload = frame.field(), frame.isAtEnd else { throw KeyWrapError.integrityFailure }
        self.mechanism = mechanism
        self.kek = kek
        self.header = header
        self.payload = Array(payload)
        self.frame = frame
    }
}
