// The per-token audit key and the checkpoint MAC (docs/audit.md §Checkpoints).
//
// audit key = HKDF-SHA-256(ikm: the token's root key, salt: "TG-AUDIT-KEY-1",
//                          info: "TensorGuard audit key v1" || 0x00 || token uuid, 32 bytes)
// The root key exists only wrapped at rest and in memory while someone is logged in, so the audit key does too;
// the module and `tg-pkcs11 audit verify --token` derive it from the same SessionKeys.
import CryptoCore

public enum AuditKey {
    public static let salt = Array("TG-AUDIT-KEY-1".utf8)
    public static let label = "TensorGuard audit key v1"

    public static func info(tokenUUID: String) -> [UInt8] {
        Array(label.utf8) + [0] + Array(tokenUUID.utf8)
    }

    /// The bytes a checkpoint's `hmac` authenticates. v1 (checkpoints without `prev_checkpoint`, written before
    /// checkpoints were chained): version, token uuid, the checkpoint's own seq, the hash of the line before it (its
    /// `prev`, hence the whole chain up to there) and its time. v2 adds the seq and hmac of the token's previous
    /// checkpoint (0 and empty for its first), so each checkpoint also vouches for the one before it.
    static func checkpointMessage(tokenUUID: String, seq: Int64, prev: String, time: String,
                                  previous: AuditCheckpointLink??) -> [UInt8] {
        switch previous {
        case .none:
            return Array("tg-audit-checkpoint-v1\n\(tokenUUID)\n\(seq)\n\(prev)\n\(time)".utf8)
        case .some(let link):
            return Array("tg-audit-checkpoint-v2\n\(tokenUUID)\n\(seq)\n\(prev)\n\(time)\n\(link?.seq ?? 0)\n\(link?.hmac ?? "")".utf8)
        }
    }

    /// A v1 MAC (no chaining); only tests and old logs have these.
    public static func checkpointMAC(key: SecretBytes, tokenUUID: String, seq: Int64, prev: String, time: String) throws -> String {
        try mac(key, checkpointMessage(tokenUUID: tokenUUID, seq: seq, prev: prev, time: time, previous: .none))
    }

    /// A v2 MAC, chained to `previous` (nil: the token's first checkpoint in the file).
    public static func checkpointMAC(key: SecretBytes, tokenUUID: String, seq: Int64, prev: String, time: String,
                                     previous: AuditCheckpointLink?) throws -> String {
        try mac(key, checkpointMessage(tokenUUID: tokenUUID, seq: seq, prev: prev, time: time, previous: .some(previous)))
    }

    static func mac(_ key: SecretBytes, _ message: [UInt8]) throws -> String {
        Hex.encode(try HMAC.authenticate(.sha256, key: key, data: message))
    }

    /// `previous`: .none for a v1 checkpoint, .some(link or nil) for a v2 one.
    public static func checkpointValid(key: SecretBytes, tokenUUID: String, seq: Int64, prev: String, time: String,
                                       previous: AuditCheckpointLink?? = .none, mac: String) -> Bool {
        guard let given = Hex.decode(mac), given.count == 32,
              let expected = try? HMAC.authenticate(.sha256, key: key, data: checkpointMessage(
                  tokenUUID: tokenUUID, seq: seq, prev: prev, time: time, previous: previous)) else { return false }
        return constantTimeEquals(expected, given)
    }
}
