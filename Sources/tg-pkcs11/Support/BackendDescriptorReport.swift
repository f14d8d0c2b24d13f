import KeyWrap

/// A backend descriptor as the `--json` reports and the text output of `backend`, `backup`, `restore` and
/// `token show` print it.
struct BackendDescriptorReport: Codable {
    let kind: String
    let keyID: String
    let keyVersion: String

    init(_ d: BackendDescriptor) {
        kind = d.kind
        keyID = d.keyID
        keyVersion = d.keyVersion
    }

    /// "pkcs11 <key id> <version>", leaving out empty parts.
    var text: String {
        kind + (keyID.isEmpty ? "" : " \(keyID)") + (keyVersion.isEmpty ? "" : " \(keyVersion)")
    }
}
