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

    /// The bytes a checkpoint's `hmac` authenticates: version, token uuid, the checkpoint's own seq, the hash
    /// of the line before it (its `prev`, hence the whole chain up to there) and its time.
    static func checkpointMessage(tokenUUID: String, seq: Int64, prev: String, time: String) -> [UInt8] {
        Array("tg-audit-checkpoint-v1\n\(tokenUUID)\n\(seq)\n\(prev)\n\(time)".utf8)
    }

    public static func checkpointMAC(key: SecretBytes, tokenUUID: String, seq: Int64, prev: String, time: String) throws -> String {
        let mac = try HMAC.authenticate(.sha256, key: key,
                                        data: checkpointMessage(tokenUUID: tokenUUID, seq: seq, prev: prev, time: time))
        return Hex.encode(mac)
    }

    public static func checkpointValid(key: SecretBytes, tokenUUID: String, seq: Int64, prev: String, time: String,
                                       mac: String) -> Bool {
        guard let given = Hex.decode(mac), given.count == 32,
              let expected = try? HMAC.authenticate(.sha256, key: key, data: checkpointMessage(
                  tokenUUID: tokenUUID, seq: seq, prev: prev, time: time)) else { return false }
        return constantTimeEquals(expected, given)
    }
}
