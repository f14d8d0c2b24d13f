// The backends as keepers of a token's anchor (KeyWrap/PKCS11/PKCS11Backend+Anchor.swift,
// KeyWrap/{AWS,GCP,Azure}/*+Anchor.swift, Support/KMSAnchorMetadata.swift): pkcs11 on a real SoftHSM2 token,
// aws-kms against moto (authentication on), gcp-kms and azure-keyvault against the project's fakes (whose
// metadata calls the contract tests check against the vendors' clients).
import CryptoCore
import Foundation
import JSON
@testable import KeyWrap
@testable import TokenStore
import TestSupport
import XCTest

/// What every anchor-holding backend must do: empty → [], a replacement leaves only the newer value, a value
/// over 128 bytes is refused, and under TokenAnchor the backend's higher generation wins over a lost anchor file.
/// Returns the mean wall time of one updateAnchor and one readAnchor (against the local server).
@discardableResult
func exerciseAnchorHolder(_ holder: any AnchorHoldingBackend, uuid: String,
                          file: StaticString = #filePath, line: UInt = #line) throws -> (update: Duration, read: Duration) {
    XCTAssertEqual(try holder.readAnchor(tokenUUID: uuid), [], "nothing kept yet", file: file, line: line)
    let first = [UInt8](repeating: 0xA5, count: 128), second = (0..<128).map { UInt8($0) }
    try holder.updateAnchor(tokenUUID: uuid) { current in
        XCTAssertEqual(current, [], file: file, line: line)
        return first
    }
    try holder.updateAnchor(tokenUUID: uuid) { current in
        XCTAssertEqual(current, [first], file: file, line: line)
        return second
    }
    XCTAssertEqual(try holder.readAnchor(tokenUUID: uuid), [second], "the replaced value is gone", file: file, line: line)
    XCTAssertThrowsError(try holder.updateAnchor(tokenUUID: uuid) { _ in [UInt8](repeating: 1, count: 129) }, file: file, line: line) { e in
        guard case .misconfigured? = e as? KeyWrapError else { return XCTFail("\(e)", file: file, line: line) }
    }
    XCTAssertEqual(try holder.readAnchor(tokenUUID: uuid), [second], "a refused value changes nothing", file: file, line: line)

    func state(_ g: Int64) -> TokenAnchor.State {
        TokenAnchor.State(generation: g, stateMAC: [UInt8](repeating: UInt8(g), count: 32), soFailed: 0, userFailed: Int(g % 3))
    }
    let dir = NSTemporaryDirectory() + "kms-anchor-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let anchor = TokenAnchor(directory: dir, backend: holder)
    try anchor.record(uuid, state(4))
    try anchor.record(uuid, state(8))
    XCTAssertEqual(try anchor.read(uuid), state(8), file: file, line: line)
    // The file rolled back (or gone): the KMS key's metadata still says 8, and a later lower write does not lower it.
    try FileManager.default.removeItem(atPath: dir)
    let fresh = TokenAnchor(directory: dir, backend: holder)
    XCTAssertEqual(try fresh.read(uuid)?.generation, 8, file: file, line: line)
    try fresh.record(uuid, state(5))
    XCTAssertEqual(try TokenAnchor(directory: dir, backend: holder).read(uuid)?.generation, 8, file: file, line: line)
    XCTAssertEqual(try TokenAnchor(directory: dir, backend: holder).read(uuid)?.userFailed, 2, "state(5)'s counter", file: file, line: line)
    XCTAssertEqual(try holder.readAnchor(tokenUUID: uuid).count, 1, file: file, line: line)

    // Latency of one replacement and one read (a state change, a login's read), against the local server.
    let rounds = 10
    let clock = ContinuousClock()
    let update = try clock.measure {
        for i in 0..<rounds { try holder.updateAnchor(tokenUUID: uuid) { _ in [UInt8](repeating: UInt8(i), count: 128) } }
    } / rounds
    let read = try clock.measure { for _ in 0..<rounds { _ = try holder.readAnchor(tokenUUID: uuid) } } / rounds
    print("KMSANCHOR \(holder.descriptor.kind) updateAnchor_ms=\(update.fractionalMilliseconds) readAnchor_ms=\(read.fractionalMilliseconds)")
    return (update, read)
}

private extension Duration {
    var fractionalMilliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}

final class KMSAnchorTests: XCTestCase {
    static let uuid = "0123456789abcdef0123456789abcdef"
    static let other = "fedcba9876543210fedcba9876543210"

    // MARK: codec

    /// The pkcs11 backend: a private data object per token in the HSM token, replaced by create-then-destroy.
    func testSoftHSMKeepsOneAnchorObjectPerToken() throws {
        let hsm = try SoftHSMFixture()
        try exerciseAnchorHolder(try hsm.backend(), uuid: Self.uuid)
    }

    func testLabelChunksRoundTripAndRefuseGaps() {
        let value = (0..<128).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let labels = KMSAnchorMetadata.labels(value, tokenUUID: Self.uuid)
        XCTAssertEqual(labels.count, 5, "256 hex characters: four of 62 and one of 8")
        for (k, v) in labels {
            XCTAssertTrue(k.utf8.count <= 63 && v.utf8.count <= 63, k)
            XCTAssertTrue(v.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }, v)
        }
        XCTAssertEqual(KMSAnchorMetadata.fromLabels(labels.merging(["team": "pki"]) { $1 }, tokenUUID: Self.uuid), [value])
        XCTAssertEqual(KMSAnchorMetadata.fromLabels(labels, tokenUUID: Self.other), [])
        for k in labels.keys {
            var missing = labels
            missing[k] = nil
            XCTAssertEqual(KMSAnchorMetadata.fromLabels(missing, tokenUUID: Self.uuid), [], "without \(k)")
        }
        var bad = labels
        bad["tg-anchor-\(Self.uuid)-2"] = String(repeating: "g", count: 62)
        XCTAssertEqual(KMSAnchorMetadata.fromLabels(bad, tokenUUID: Self.uuid), [])
        bad = labels
        bad["tg-anchor-\(Self.uuid)-5"] = ""
        XCTAssertEqual(KMSAnchorMetadata.fromLabels(bad, tokenUUID: Self.uuid), [], "a chunk after the short last one")
        // A hex length that is a multiple of 62 ends with an empty chunk, so a lost last chunk is still seen.
        let exact = [UInt8](repeating: 0xEE, count: 31)
        let two = KMSAnchorMetadata.labels(exact, tokenUUID: Self.uuid)
        XCTAssertEqual(two["tg-anchor-\(Self.uuid)-1"], "")
        XCTAssertEqual(KMSAnchorMetadata.fromLabels(two, tokenUUID: Self.uuid), [exact])
        XCTAssertEqual(KMSAnchorMetadata.replacingLabels(["team": "pki", "tg-anchor-\(Self.uuid)-9": "00"], exact, tokenUUID: Self.uuid),
                       two.merging(["team": "pki"]) { $1 })
        XCTAssertEqual(KMSAnchorMetadata.fromTags(["tg-anchor-\(Self.uuid)": "not base64!"], tokenUUID: Self.uuid), [])
        XCTAssertEqual(KMSAnchorMetadata.tagValue([UInt8](repeating: 0xFF, count: 128)).utf8.count, 172)
    }

    // MARK: aws-kms (moto, authentication on)

    func testAWSKMSKeepsTheAnchorInATag() throws {
        let moto = try MotoFixture()
        defer { moto.stop() }
        let env = ["AWS_ACCESS_KEY_ID": moto.setup.user_access_key, "AWS_SECRET_ACCESS_KEY": moto.setup.user_secret_key]
        let b = try makeAWSBackend(endpoint: moto.endpoint, keyID: moto.setup.key_id, environment: env)
        let holder = try XCTUnwrap(BackendFactoryCast.holder(b))
        // A tag that is not ours, set beforehand, survives.
        var body = Array(#"{"KeyId":"\#(moto.setup.key_id)","Tags":[{"TagKey":"team","TagValue":"pki"}]}"#.utf8)
        _ = try b.client.call("TagResource", body: &body, key: moto.setup.key_id)
        b.resetStatistics()
        try exerciseAnchorHolder(holder, uuid: Self.uuid)
        let tags = try b.tags(moto.setup.key_id)
        XCTAssertEqual(tags["team"], "pki")
        XCTAssertEqual(tags["tg-anchor-\(Self.uuid)"]?.utf8.count, 172)
        XCTAssertEqual(Set(tags.keys), ["team", "tg-anchor-\(Self.uuid)"])

        // One replacement = ListResourceTags + TagResource; one read = ListResourceTags.
        b.resetStatistics()
        try holder.updateAnchor(tokenUUID: Self.other) { _ in [1, 2, 3] }
        XCTAssertEqual(b.statistics.kms.requests, 2)
        _ = try holder.readAnchor(tokenUUID: Self.other)
        XCTAssertEqual(b.statistics.kms.requests, 3)
        XCTAssertEqual(try holder.readAnchor(tokenUUID: Self.uuid).count, 1, "each token its own tag")

        // By alias (and alias ARN): resolved once with DescribeKey, the same key's tags.
        for alias in [moto.setup.alias, "arn:aws:kms:us-east-1:\(moto.setup.account):\(moto.setup.alias)"] {
            let byAlias = try makeAWSBackend(endpoint: moto.endpoint, keyID: alias, environment: env)
            XCTAssertEqual(try byAlias.readAnchor(tokenUUID: Self.other), [[1, 2, 3]], alias)
            XCTAssertEqual(try byAlias.readAnchor(tokenUUID: Self.other), [[1, 2, 3]], alias)
            XCTAssertEqual(byAlias.statistics.kms.requests, 3, "one DescribeKey, two ListResourceTags (\(alias))")
        }
        // Another key keeps its own (none).
        let key2 = try makeAWSBackend(endpoint: moto.endpoint, keyID: moto.setup.key2_arn, environment: env)
        XCTAssertEqual(try key2.readAnchor(tokenUUID: Self.uuid), [])

        // A principal with kms:Encrypt only: the tag calls are refused by policy, naming the action, not the value.
        let encryptOnly = try makeAWSBackend(endpoint: moto.endpoint, keyID: moto.setup.key_id,
                                             environment: ["AWS_ACCESS_KEY_ID": moto.setup.encrypt_only_access_key,
                                                           "AWS_SECRET_ACCESS_KEY": moto.setup.encrypt_only_secret_key])
        let message = expectAWSError("policyViolation") { _ = try encryptOnly.readAnchor(tokenUUID: Self.uuid) }
        XCTAssertTrue(message.contains("kms:ListResourceTags"), message)
        // A key that does not exist.
        let missing = try makeAWSBackend(endpoint: moto.endpoint, keyID: "11111111-2222-3333-4444-555555555555", environment: env)
        expectAWSError("keyNotFound") { _ = try missing.readAnchor(tokenUUID: Self.uuid) }
    }

    func testAWSKMSTagCallsPassTheFaultProxy() throws {
        let moto = try MotoFixture()
        defer { moto.stop() }
        let proxy = try FaultServer(upstream: moto.endpoint)
        defer { proxy.stop() }
        let env = ["AWS_ACCESS_KEY_ID": moto.setup.user_access_key, "AWS_SECRET_ACCESS_KEY": moto.setup.user_secret_key]
        let b = try makeAWSBackend(endpoint: proxy.endpoint, keyID: moto.setup.key_id, environment: env)
        try proxy.faults(["throttle", "500"])
        try b.updateAnchor(tokenUUID: Self.uuid) { _ in [9, 9] }
        XCTAssertEqual(try b.readAnchor(tokenUUID: Self.uuid), [[9, 9]])
        XCTAssertEqual(try proxy.stats().kms, 5, "two retried faults, ListResourceTags, TagResource, ListResourceTags")
        try proxy.faults(["malformed"])
        expectAWSError("unreachable") { _ = try b.readAnchor(tokenUUID: Self.uuid) }
    }

    // MARK: gcp-kms (fake Cloud KMS)

    func gcpBackend(_ server: FakeCloudServer, key: String? = nil) throws -> GCPKMSBackend {
        try GCPKMSBackend(configuration: BackendConfiguration(kind: "gcp-kms", options: [
            "key": key ?? server.string("key_name"), "credentials_file": server.string("sa_key"), "endpoint": server.base,
            "ca_bundle": server.ca, "timeout": "2", "connect_timeout": "1", "max_attempts": "3", "retry_base_delay": "0.05"]))
    }

    func setLabels(_ b: GCPKMSBackend, _ labels: [String: String]) throws {
        var body = JSONWriter()
        body.beginObject()
        body.key("labels"); body.stringMap(labels)
        body.endObject()
        let name = b.configuration.keyName
        _ = try b.request("PATCH", "\(b.configuration.endpoint)/v1/\(name)?updateMask=labels", "cryptoKeys.patch",
                          on: name, body.take()) { $0["name"] }
    }

    func testGCPKMSKeepsTheAnchorInLabels() throws {
        let server = try FakeCloudServer("gcp/fake_gcp_kms.py")
        defer { server.stop() }
        // Configured with a pinned version: the labels are the CryptoKey's.
        let b = try gcpBackend(server, key: server.string("key_name") + "/cryptoKeyVersions/1")
        try setLabels(b, ["team": "pki", "env": "prod"])
        try exerciseAnchorHolder(b, uuid: Self.uuid)
        let labels = try gcpBackend(server).labels()
        XCTAssertEqual(labels["team"], "pki")
        XCTAssertEqual(labels["env"], "prod")
        XCTAssertEqual(labels.keys.filter { $0.hasPrefix("tg-anchor-\(Self.uuid)-") }.count, 5)
        XCTAssertEqual(labels.count, 7)

        try server.reset()
        try b.updateAnchor(tokenUUID: Self.other) { _ in [7] }
        XCTAssertEqual(try server.stats()["get_ok"], 1)
        XCTAssertEqual(try server.stats()["patch_ok"], 1, "one replacement: one get, one patch")
        XCTAssertEqual(try b.readAnchor(tokenUUID: Self.uuid).count, 1, "each token its own labels")
        XCTAssertEqual(try b.readAnchor(tokenUUID: Self.other), [[7]])

        // A chunk lost or edited by hand: that value is absent, nothing crashes.
        var edited = try b.labels()
        edited["tg-anchor-\(Self.uuid)-1"] = nil
        try setLabels(b, edited)
        XCTAssertEqual(try b.readAnchor(tokenUUID: Self.uuid), [])
        XCTAssertEqual(try b.readAnchor(tokenUUID: Self.other), [[7]])

        // Permission to read but not to update the key: policyViolation naming the permission.
        try server.control("/_test/deny", ["name": server.string("key_name"), "deny": true, "ops": ["cryptoKeys.update"]])
        XCTAssertEqual(try b.readAnchor(tokenUUID: Self.other), [[7]])
        XCTAssertThrowsError(try b.updateAnchor(tokenUUID: Self.other) { _ in [8] }) { e in
            guard case .policyViolation(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("cloudkms.cryptoKeys.update"), m)
        }
        try server.control("/_test/deny", ["name": server.string("key_name"), "deny": false])
        // The fake refuses labels Cloud KMS refuses (what the contract test checks against google-cloud-kms).
        XCTAssertThrowsError(try setLabels(b, ["Team": "x"])) { e in
            guard case .misconfigured? = e as? KeyWrapError else { return XCTFail("\(e)") }
        }
        let missing = try gcpBackend(server, key: "projects/tg-test/locations/global/keyRings/tg-ring/cryptoKeys/nope")
        XCTAssertThrowsError(try missing.readAnchor(tokenUUID: Self.uuid)) { e in
            guard case .keyNotFound? = e as? KeyWrapError else { return XCTFail("\(e)") }
        }
    }

    // MARK: azure-keyvault (fake Key Vault)

    func azureBackend(_ server: FakeCloudServer, version: String? = nil) throws -> AzureKeyVaultBackend {
        var o = ["vault_url": server.string("vault_url"), "key_name": "tg-root", "tenant_id": server.string("tenant"),
                 "client_id": server.string("client_id"), "client_secret_file": server.string("client_secret_file"),
                 "authority_host": server.string("vault_url"), "ca_bundle": server.ca, "timeout": "2", "max_attempts": "3",
                 "retry_base_delay": "0.05"]
        if let version { o["key_version"] = version }
        return try AzureKeyVaultBackend(configuration: BackendConfiguration(kind: "azure-keyvault", options: o))
    }

    func setTags(_ b: AzureKeyVaultBackend, _ tags: [String: String]) throws {
        let (kid, _) = try b.keyTags()
        var body = JSONWriter()
        body.beginObject()
        body.key("tags"); body.stringMap(tags)
        body.endObject()
        _ = try b.call(kid, "updateKey", body.take(), httpMethod: "PATCH") { $0["key"] }
    }

    func testAzureKeyVaultKeepsTheAnchorInATag() throws {
        let server = try FakeCloudServer("azure/fake_azure_keyvault.py")
        defer { server.stop() }
        let b = try azureBackend(server)
        try setTags(b, ["team": "pki"])
        try exerciseAnchorHolder(b, uuid: Self.uuid)
        let (kid, tags) = try b.keyTags()
        XCTAssertEqual(tags["team"], "pki")
        XCTAssertEqual(tags["tg-anchor-\(Self.uuid)"]?.utf8.count, 172)
        XCTAssertEqual(tags.count, 2)

        try server.reset()
        try b.updateAnchor(tokenUUID: Self.other) { _ in [7] }
        XCTAssertEqual(try server.stats()["get_ok"], 1)
        XCTAssertEqual(try server.stats()["update_ok"], 1, "one replacement: one GetKey, one UpdateKey")

        // A new key version starts without the anchor; a backend pinned to the old version still reads it.
        try server.control("/_test/rotate", ["name": "tg-root"])
        XCTAssertEqual(try b.readAnchor(tokenUUID: Self.uuid), [])
        let pinned = try azureBackend(server, version: String(kid.split(separator: "/").last ?? ""))
        XCTAssertEqual(try pinned.readAnchor(tokenUUID: Self.uuid).count, 1)
        XCTAssertEqual(try pinned.readAnchor(tokenUUID: Self.other), [[7]])

        // 15 tags already: no room, refused before any write.
        try setTags(b, Dictionary(uniqueKeysWithValues: (0..<15).map { ("t\($0)", "v") }))
        XCTAssertThrowsError(try b.updateAnchor(tokenUUID: Self.uuid) { _ in [1] }) { e in
            guard case .misconfigured(let m)? = e as? KeyWrapError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("15"), m)
        }
        XCTAssertEqual(try b.keyTags().tags.count, 15)

        // A principal without keys/get: policyViolation.
        try server.control("/_test/deny", ["name": "tg-root", "deny": true, "ops": ["get"]])
        XCTAssertThrowsError(try b.readAnchor(tokenUUID: Self.uuid)) { e in
            guard case .policyViolation? = e as? KeyWrapError else { return XCTFail("\(e)") }
        }
    }
}

/// `backend as? any AnchorHoldingBackend`, what StoreIntegrity and tg-pkcs11 do to find an anchor keeper.
enum BackendFactoryCast {
    static func holder(_ backend: any KeyWrapBackend) -> (any AnchorHoldingBackend)? { backend as? any AnchorHoldingBackend }
}
