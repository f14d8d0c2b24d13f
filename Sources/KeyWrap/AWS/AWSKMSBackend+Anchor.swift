// The aws-kms backend as the keeper of a token's anchor (docs/storage-format.md §Rollback, docs/backends/aws-kms.md):
// a tag "tg-anchor-<token uuid>" on the configured key, its value the base64 of the anchor slot (128 bytes → 172
// characters; a tag value holds 256, and base64's + / = are tag characters). Read with ListResourceTags, replaced
// with one TagResource (same tag key: the new value replaces the old one in one call). Needs kms:ListResourceTags
// and kms:TagResource on the key, and kms:DescribeKey when key_id is an alias (tag calls take a key id or ARN only).
import JSON

extension AWSKMSBackend: AnchorHoldingBackend {
    public func readAnchor(tokenUUID: String) throws -> [[UInt8]] {
        KMSAnchorMetadata.fromTags(try tags(try taggableKey()), tokenUUID: tokenUUID)
    }

    public func updateAnchor(tokenUUID: String, _ update: ([[UInt8]]) -> [UInt8]) throws {
        let key = try taggableKey()
        let value = update(KMSAnchorMetadata.fromTags(try tags(key), tokenUUID: tokenUUID))
        try KMSAnchorMetadata.checkLength(value)
        let encoded = KMSAnchorMetadata.tagValue(value)
        var writer = JSONWriter(capacity: 512)
        writer.beginObject()
        writer.key("KeyId"); writer.string(key)
        writer.key("Tags")
        writer.beginArray()
        writer.beginObject()
        writer.key("TagKey"); writer.string(KMSAnchorMetadata.name(tokenUUID))
        writer.key("TagValue"); writer.string(encoded)
        writer.endObject()
        writer.endArray()
        writer.endObject()
        var body = writer.take()
        _ = try KMSAnchorMetadata.hiding([encoded]) { try client.call("TagResource", body: &body, key: key) }
    }

    /// Every tag of `key` (ListResourceTags, following NextMarker while Truncated).
    func tags(_ key: String) throws -> [String: String] {
        var out: [String: String] = [:]
        var marker: String? = nil
        for _ in 0..<64 {
            var writer = JSONWriter()
            writer.beginObject()
            writer.key("KeyId"); writer.string(key)
            if let marker { writer.key("Marker"); writer.string(marker) }
            writer.endObject()
            var body = writer.take()
            let page = try client.call("ListResourceTags", body: &body, key: key)
            guard case .array(let tags) = page["Tags"] ?? .array([]) else {
                throw KeyWrapError.unreachable("AWS KMS ListResourceTags with key \(key): response without a Tags list")
            }
            for tag in tags {
                if let k = tag["TagKey"]?.text, let v = tag["TagValue"]?.text { out[k] = v }
            }
            guard page["Truncated"]?.bool == true else { return out }
            guard let next = page["NextMarker"]?.text, !next.isEmpty, next != marker else {
                throw KeyWrapError.unreachable("AWS KMS ListResourceTags with key \(key): truncated response without a new NextMarker")
            }
            marker = next
        }
        throw KeyWrapError.unreachable("AWS KMS ListResourceTags with key \(key): more than 64 pages")
    }

    /// The configured key as tag calls take it: a key id or key ARN as configured; an alias resolved once with
    /// DescribeKey (its KeyMetadata.Arn).
    func taggableKey() throws -> String {
        let configured = configuration.keyID
        let isAlias = configured.hasPrefix("alias/") || (AWSKMSBackendConfig.parseARN(configured)?.resource.hasPrefix("alias/") ?? false)
        guard isAlias else { return configured }
        if let known = anchorKey.withLock({ $0 }) { return known }
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("KeyId"); writer.string(configured)
        writer.endObject()
        var body = writer.take()
        let described = try client.call("DescribeKey", body: &body, key: configured)
        guard let arn = described["KeyMetadata"]?["Arn"]?.text, let parsed = AWSKMSBackendConfig.parseARN(arn),
              parsed.resource.hasPrefix("key/") else {
            throw KeyWrapError.unreachable("AWS KMS DescribeKey with key \(configured): response without the key ARN")
        }
        anchorKey.withLock { $0 = arn }
        return arn
    }
}
