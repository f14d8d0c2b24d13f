// The azure-keyvault backend as the keeper of a token's anchor (docs/storage-format.md §Rollback,
// docs/backends/azure-keyvault.md): a tag "tg-anchor-<token uuid>" on the configured key version, its value the
// base64 of the anchor slot (172 characters; a tag value holds 256, a key at most 15 tags). Read with GetKey;
// replaced with one UpdateKey (PATCH {"tags": …} on the version's kid) carrying every tag, the ones not ours kept.
// Without a pinned key_version the tags are those of the version the GET of the latest returns: a new key version
// starts without the anchor (the local anchor file still has it; the next state change writes it there). Needs the
// keys/get and keys/update permissions (Key Vault Crypto Officer, or an access policy with get, update, wrapKey,
// unwrapKey).
import JSON

extension AzureKeyVaultBackend: AnchorHoldingBackend {
    static let maximumTags = 15

    public func readAnchor(tokenUUID: String) throws -> [[UInt8]] {
        KMSAnchorMetadata.fromTags(try keyTags().tags, tokenUUID: tokenUUID)
    }

    public func updateAnchor(tokenUUID: String, _ update: ([[UInt8]]) -> [UInt8]) throws {
        let (kid, current) = try keyTags()
        let value = update(KMSAnchorMetadata.fromTags(current, tokenUUID: tokenUUID))
        try KMSAnchorMetadata.checkLength(value)
        let encoded = KMSAnchorMetadata.tagValue(value)
        var next = current
        next[KMSAnchorMetadata.name(tokenUUID)] = encoded
        guard next.count <= Self.maximumTags else {
            throw KeyWrapError.misconfigured("Key Vault key \(kid) has \(current.count) tags: no room for the anchor tag (at most \(Self.maximumTags))")
        }
        var body = JSONWriter(capacity: 1024)
        body.beginObject()
        body.key("tags"); body.stringMap(next)
        body.endObject()
        let stored = try KMSAnchorMetadata.hiding([encoded]) {
            try call(kid, "updateKey", body.take(), httpMethod: "PATCH") { doc -> [String: String]? in
                doc["key"]?["kid"]?.text == kid ? KMSAnchorMetadata.stringMap(doc["tags"]?.object) : nil
            }
        }
        guard KMSAnchorMetadata.fromTags(stored, tokenUUID: tokenUUID) == [value] else {
            throw KeyWrapError.unreachable("Key Vault updateKey on \(kid): the answer lacks the tag written")
        }
    }

    /// GetKey of the configured key (its pinned version, else the latest): the version's kid and its tags.
    func keyTags() throws -> (kid: String, tags: [String: String]) {
        let prefix = "\(configuration.vaultURL)/keys/\(configuration.keyName)/"
        let url = prefix + (configuration.keyVersion ?? "")
        let pinned = configuration.keyVersion
        let vault = configuration.vaultURL
        return try call(url, "getKey", [], httpMethod: "GET") { doc -> (String, [String: String])? in
            guard let kid = doc["key"]?["kid"]?.text, Self.kidIsOnVault(kid, vault: vault), kid.hasPrefix(prefix),
                  kid.count > prefix.count, pinned == nil || kid == prefix + (pinned ?? "") else { return nil }
            return (kid, KMSAnchorMetadata.stringMap(doc["tags"]?.object))
        }
    }
}
