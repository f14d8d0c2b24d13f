// The gcp-kms backend as the keeper of a token's anchor (docs/storage-format.md §Rollback, docs/backends/gcp-kms.md):
// labels on the configured CryptoKey. Label values are [a-z0-9_-]{0,63}, so the anchor slot is lowercase hex split
// over "tg-anchor-<token uuid>-0", "-1", … (KMSAnchorMetadata.labels). Read with cryptoKeys.get; replaced with one
// cryptoKeys.patch (updateMask=labels) carrying the whole label map, the labels that are not ours kept. Needs
// cloudkms.cryptoKeys.get and cloudkms.cryptoKeys.update on the key.
import JSON

extension GCPKMSBackend: AnchorHoldingBackend {
    public func readAnchor(tokenUUID: String) throws -> [[UInt8]] {
        KMSAnchorMetadata.fromLabels(try labels(), tokenUUID: tokenUUID)
    }

    public func updateAnchor(tokenUUID: String, _ update: ([[UInt8]]) -> [UInt8]) throws {
        let current = try labels()
        let value = update(KMSAnchorMetadata.fromLabels(current, tokenUUID: tokenUUID))
        try KMSAnchorMetadata.checkLength(value)
        let next = KMSAnchorMetadata.replacingLabels(current, value, tokenUUID: tokenUUID)
        var body = JSONWriter(capacity: 1024)
        body.beginObject()
        body.key("labels"); body.stringMap(next)
        body.endObject()
        let chunks = KMSAnchorMetadata.labels(value, tokenUUID: tokenUUID).values.map { $0 }
        let keyName = configuration.keyName
        let stored = try KMSAnchorMetadata.hiding(chunks) {
            try request("PATCH", "\(configuration.endpoint)/v1/\(keyName)?updateMask=labels", "cryptoKeys.patch",
                        on: keyName, body.take()) { doc -> [String: String]? in
                doc["name"]?.text == keyName ? KMSAnchorMetadata.stringMap(doc["labels"]?.object) : nil
            }
        }
        guard KMSAnchorMetadata.fromLabels(stored, tokenUUID: tokenUUID) == [value] else {
            throw KeyWrapError.unreachable("Cloud KMS cryptoKeys.patch on \(keyName): the answer lacks the labels written")
        }
    }

    /// The CryptoKey's labels (cryptoKeys.get; the configured key without a pinned version).
    func labels() throws -> [String: String] {
        let keyName = configuration.keyName
        return try request("GET", "\(configuration.endpoint)/v1/\(keyName)", "cryptoKeys.get", on: keyName, []) { doc in
            doc["name"]?.text == keyName ? KMSAnchorMetadata.stringMap(doc["labels"]?.object) : nil
        }
    }
}
