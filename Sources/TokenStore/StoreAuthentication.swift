import CryptoCore
import KeyWrap

/// The MACs that authenticate a token's stored state under a key derived from its root key
/// (docs/storage-format.md §Authentication):
///
/// - **object MAC** (`objects.mac`): HMAC-SHA-256 over the whole row — token UUID, unique id, creation and change
///   number (the per-object version), the public attribute set (class, key type, every flag and counter) and the
///   sealed attribute set. Editing, swapping or moving any of it breaks the MAC.
/// - **state MAC** (`token.state_mac`): HMAC-SHA-256 over the token's identity, label, backend descriptor, wrapped
///   root, PIN envelopes (not their retry counters), the generation counter and the XOR of every object MAC. A
///   replayed old row (its own MAC still valid), a deleted row or a copied-back older database breaks it.
///
/// Only a caller holding the root key (a login, which needs the backend) can compute either.
enum StoreAuthentication {
    static let keySalt = Array("TG-STORE-AUTH-1".utf8)
    static let macLength = 32
    static let zeroDigest = [UInt8](repeating: 0, count: macLength)

    /// `HKDF-SHA-256(ikm: root, salt: "TG-STORE-AUTH-1", info: token UUID, 32)`.
    static func key(_ keys: SessionKeys) throws -> SecretBytes {
        try keys.storeAuthenticationKey()
    }

    /// `"TG-OBJ-2" 0x00 || field(uuid) || field(uid) || u64be created || u64be seq || u32be len || public set ||
    /// u32be len || sealed set` (sets in their stored encoding).
    static func objectMAC(key: SecretBytes, tokenUUID: String, uniqueID: String, created: Int64, sequence: Int64,
                          publicBlob: [UInt8], sealedBlob: [UInt8]) throws -> [UInt8] {
        var header = Array("TG-OBJ-2".utf8)
        header.append(0)
        RecordCodec.appendField(&header, tokenUUID)
        RecordCodec.appendField(&header, uniqueID)
        RecordCodec.appendU64(&header, UInt64(bitPattern: created))
        RecordCodec.appendU64(&header, UInt64(bitPattern: sequence))
        return try crypto {
            let h = try HMAC(.sha256, key: key)
            try h.update(header)
            try h.update(lengthPrefix(publicBlob.count))
            try h.update(publicBlob)
            try h.update(lengthPrefix(sealedBlob.count))
            try h.update(sealedBlob)
            return try h.finalize()
        }
    }

    static func objectMAC(key: SecretBytes, tokenUUID: String, object: StoredObject, created: Int64) throws -> [UInt8] {
        try objectMAC(key: key, tokenUUID: tokenUUID, uniqueID: object.uniqueID, created: created,
                      sequence: object.sequence, publicBlob: try RecordCodec.encode(object.publicAttributes),
                      sealedBlob: try RecordCodec.encode(object.sealedAttributes.mapValues(\.bytes)))
    }

    /// What the state MAC covers, read from the token and pin rows.
    struct StateFields {
        var tokenUUID: String
        var serial: String
        var label: [UInt8]
        var backend: BackendDescriptor?
        var wrappedRoot: [UInt8]
        var epoch: Int64
        var generation: Int64
        var envelopes: [(Role, PINEnvelope)]
        var objectsDigest: [UInt8]
        /// The XOR of the ledger row MACs (`ledgerRowMAC`); nil on a store whose ledgers are not authenticated yet.
        var ledgerDigest: [UInt8]?
    }

    /// `"TG-STATE-1" 0x00 || field(uuid) || field(serial) || label(32) || field(kind) || field(key id) ||
    /// field(key version) || u32be len || wrapped root || u64be epoch || u64be generation || per PIN role in order
    /// (so, user), when set: role byte || salt || u32be log2N, r, p, max attempts || u32be len || sealed ||
    /// objects digest(32) [|| "L" || ledger digest(32), once the ledgers are authenticated]`.
    static func stateMAC(key: SecretBytes, _ f: StateFields) throws -> [UInt8] {
        var m = Array("TG-STATE-1".utf8)
        m.append(0)
        RecordCodec.appendField(&m, f.tokenUUID)
        RecordCodec.appendField(&m, f.serial)
        m.append(contentsOf: f.label)
        for field in [f.backend?.kind ?? "", f.backend?.keyID ?? "", f.backend?.keyVersion ?? ""] {
            RecordCodec.appendField(&m, field)
        }
        m.append(contentsOf: lengthPrefix(f.wrappedRoot.count))
        m.append(contentsOf: f.wrappedRoot)
        RecordCodec.appendU64(&m, UInt64(bitPattern: f.epoch))
        RecordCodec.appendU64(&m, UInt64(bitPattern: f.generation))
        for (role, e) in f.envelopes.sorted(by: { $0.0.rawValue < $1.0.rawValue }) {
            m.append(role == .so ? UInt8(ascii: "S") : UInt8(ascii: "U"))
            m.append(contentsOf: lengthPrefix(e.salt.count))
            m.append(contentsOf: e.salt)
            for v in [e.log2N, e.r, e.p, e.maxAttempts] { RecordCodec.appendU32(&m, UInt32(truncatingIfNeeded: v)) }
            m.append(contentsOf: lengthPrefix(e.sealed.count))
            m.append(contentsOf: e.sealed)
        }
        m.append(contentsOf: f.objectsDigest)
        if let ledger = f.ledgerDigest {
            m.append(UInt8(ascii: "L"))
            m.append(contentsOf: ledger)
        }
        return try crypto { try HMAC.authenticate(.sha256, key: key, data: m) }
    }

    /// The objects digest is the XOR of the object MACs: a keyed set hash that one write updates in O(1)
    /// (XOR out the old MAC, XOR in the new one).
    static func xor(_ digest: inout [UInt8], _ mac: [UInt8]) {
        guard mac.count == digest.count else { return }
        for i in digest.indices { digest[i] ^= mac[i] }
    }

    /// One row of the N2HE ledgers (docs/storage-format.md §Authentication): a spent seed
    /// (`"TG-LEDGER-1" 0x00 'S' || field(ledger) || u32be len || digest`) or an hour's decrypt-call count
    /// (`... 'H' || field(ledger) || u64be hour || u64be calls`). Their XOR is the ledger digest in the state MAC,
    /// so a row removed, added or changed in the file fails the next login.
    static func ledgerRowMAC(key: SecretBytes, ledger: String, seedDigest: [UInt8]) throws -> [UInt8] {
        var m = ledgerPrefix(UInt8(ascii: "S"), ledger)
        m.append(contentsOf: lengthPrefix(seedDigest.count))
        m.append(contentsOf: seedDigest)
        return try crypto { try HMAC.authenticate(.sha256, key: key, data: m) }
    }

    static func ledgerRowMAC(key: SecretBytes, ledger: String, hour: Int64, calls: Int64) throws -> [UInt8] {
        var m = ledgerPrefix(UInt8(ascii: "H"), ledger)
        RecordCodec.appendU64(&m, UInt64(bitPattern: hour))
        RecordCodec.appendU64(&m, UInt64(bitPattern: calls))
        return try crypto { try HMAC.authenticate(.sha256, key: key, data: m) }
    }

    private static func ledgerPrefix(_ kind: UInt8, _ ledger: String) -> [UInt8] {
        var m = Array("TG-LEDGER-1".utf8)
        m.append(0)
        m.append(kind)
        RecordCodec.appendField(&m, ledger)
        return m
    }

    private static func lengthPrefix(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        RecordCodec.appendU32(&out, UInt32(truncatingIfNeeded: n))
        return out
    }

    private static func crypto<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as CryptoError { throw StoreError.crypto(e) }
    }
}
