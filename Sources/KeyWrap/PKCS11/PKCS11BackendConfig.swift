// Configuration of the `pkcs11` backend (docs/backends/pkcs11.md): which module, which token, where the
// backend user PIN comes from (never inline), which KEK and which mechanism.
import CP11Kit
import CryptoCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the KEK wraps the root key. Raw values are the configuration spellings.
public enum PKCS11WrapMechanism: String, Sendable, CaseIterable, CustomStringConvertible {
    /// CKM_AES_KEY_WRAP_PAD (RFC 5649) through C_WrapKey / C_UnwrapKey. The default.
    case aesKeyWrapPad = "aes-key-wrap-pad"
    /// CKM_AES_GCM through C_Encrypt / C_Decrypt: random 96-bit IV, 128-bit tag, AAD = the token binding.
    case aesGCM = "aes-gcm"
    /// CKM_RSA_PKCS_OAEP (SHA-256, MGF1-SHA-256, no label) with an RSA key pair: C_Encrypt with the public
    /// key, C_Decrypt with the private key.
    case rsaOAEPSHA256 = "rsa-oaep-sha256"

    public var description: String { rawValue }

    /// Identifier stored in the blob.
    var blobID: UInt8 {
        switch self {
        case .aesKeyWrapPad: return 1
        case .aesGCM: return 2
        case .rsaOAEPSHA256: return 3
        }
    }

    init?(blobID: UInt8) {
        guard let m = Self.allCases.first(where: { $0.blobID == blobID }) else { return nil }
        self = m
    }

    var isRSA: Bool { self == .rsaOAEPSHA256 }
}

/// Which token of the backend module holds the KEK.
public enum PKCS11TokenSelector: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// CK_TOKEN_INFO.label (trailing blanks ignored). Luna: the partition label; nShield: the softcard or OCS name.
    case label(String)
    /// CK_TOKEN_INFO.serialNumber (trailing blanks ignored).
    case serial(String)

    public var description: String {
        switch self {
        case .label(let l): return "token-label=\(l)"
        case .serial(let s): return "token-serial=\(s)"
        }
    }

    func matches(_ info: HSMTokenInfo) -> Bool {
        switch self {
        case .label(let l): return info.label == l
        case .serial(let s): return info.serial == s
        }
    }
}

/// Which key on the backend token is the KEK: CKA_LABEL or CKA_ID.
public enum PKCS11KEKReference: Sendable, Equatable, Hashable, CustomStringConvertible {
    case label(String)
    case id([UInt8])

    public var description: String {
        switch self {
        case .label(let l): return "kek-label=\(l)"
        case .id(let id): return "kek-id=" + Hex.encode(id)
        }
    }

    /// Parses a command-line KEK reference: `id:<hex>` (CKA_ID), `label:<text>`, or a bare label.
    public init(parsing text: String) throws {
        if text.hasPrefix("id:") {
            guard let id = Hex.decode(String(text.dropFirst(3)), operatorInput: true), !id.isEmpty, id.count <= 255 else {
                throw KeyWrapError.misconfigured("KEK id '\(text.dropFirst(3))' is not hex")
            }
            self = .id(id)
        } else {
            let label = text.hasPrefix("label:") ? String(text.dropFirst(6)) : text
            guard !label.isEmpty, label.utf8.count <= 255 else { throw KeyWrapError.misconfigured("KEK label must be 1...255 bytes") }
            self = .label(label)
        }
    }

    var attribute: HSMAttribute {
        switch self {
        case .label(let l): return HSMAttribute(UInt(CKA_LABEL), .bytes(Array(l.utf8)))
        case .id(let id): return HSMAttribute(UInt(CKA_ID), .bytes(id))
        }
    }

    /// Blob encoding: kind byte (1 label, 2 id) and bytes.
    var encoded: (UInt8, [UInt8]) {
        switch self {
        case .label(let l): return (1, Array(l.utf8))
        case .id(let id): return (2, id)
        }
    }

    init?(kind: UInt8, bytes: ArraySlice<UInt8>) {
        switch kind {
        case 1:
            guard let s = String(validating: Array(bytes), as: UTF8.self), !s.isEmpty else { return nil }
            self = .label(s)
        case 2:
            guard !bytes.isEmpty else { return nil }
            self = .id(Array(bytes))
        default: return nil
        }
    }
}


/// The `pkcs11` backend's settings.
public struct PKCS11BackendConfig: Sendable, Equatable {
    /// The longest backend PIN read from `pin_env` / `pin_file`.
    public static let maximumPINLength = 256
    /// Absolute path of the backend's PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    public var modulePath: String
    public var token: PKCS11TokenSelector
    public var pin: CredentialSource
    /// The KEK new wraps use (unwrap uses the KEK named in the blob).
    public var kek: PKCS11KEKReference
    public var mechanism: PKCS11WrapMechanism
    /// Accept a KEK with CKA_EXTRACTABLE = TRUE (refused by default: a KEK that can leave the HSM protects nothing).
    public var allowExtractableKEK: Bool

    public init(modulePath: String, token: PKCS11TokenSelector, pin: CredentialSource, kek: PKCS11KEKReference,
                mechanism: PKCS11WrapMechanism = .aesKeyWrapPad, allowExtractableKEK: Bool = false) {
        self.modulePath = modulePath
        self.token = token
        self.pin = pin
        self.kek = kek
        self.mechanism = mechanism
        self.allowExtractableKEK = allowExtractableKEK
    }

    /// Configuration keys understood in `BackendConfiguration.options`.
    public static let optionKeys: [String] = [
        "module", "token_label", "token_serial", "pin_env", "pin_file", "kek_label", "kek_id", "mechanism",
        "allow_extractable_kek",
    ]

    /// Parses `BackendConfiguration.options` (kind "pkcs11"). Exactly one of each pair
    /// `token_label|token_serial`, `pin_env|pin_file`, `kek_label|kek_id`; `module` required; `mechanism`
    /// defaults to aes-key-wrap-pad; `allow_extractable_kek` true/false (default false). Unknown keys and an
    /// inline `pin` are refused (`.misconfigured`, naming the key, never a value of a PIN option).
    public init(options: [String: String]) throws {
        for key in options.keys.sorted() where !Self.optionKeys.contains(key) {
            if key == "pin" || key == "user_pin" || key == "pin_value" {
                throw KeyWrapError.misconfigured("pkcs11 backend: an inline PIN ('\(key)') is not accepted; use pin_env or pin_file")
            }
            throw KeyWrapError.misconfigured("pkcs11 backend: unknown option '\(key)' (known: \(Self.optionKeys.joined(separator: ", ")))")
        }
        func one(_ a: String, _ b: String) throws -> (String, String) {
            let va = options[a].map(pkcs11Trim), vb = options[b].map(pkcs11Trim)
            switch (va, vb) {
            case (let x?, nil) where !x.isEmpty: return (a, x)
            case (nil, let y?) where !y.isEmpty: return (b, y)
            case (.some, .some): throw KeyWrapError.misconfigured("pkcs11 backend: give either \(a) or \(b), not both")
            default: throw KeyWrapError.misconfigured("pkcs11 backend: \(a) or \(b) is required")
            }
        }
        guard let module = options["module"].map(pkcs11Trim), !module.isEmpty else {
            throw KeyWrapError.misconfigured("pkcs11 backend: 'module' (path of the backend PKCS#11 library) is required")
        }
        guard module.hasPrefix("/") else {
            throw KeyWrapError.misconfigured("pkcs11 backend: module path '\(module)' must be absolute")
        }
        let token = try one("token_label", "token_serial")
        let pin = try one("pin_env", "pin_file")
        let kek = try one("kek_label", "kek_id")
        let kekRef: PKCS11KEKReference
        if kek.0 == "kek_id" {
            guard let id = Hex.decode(kek.1, operatorInput: true), !id.isEmpty, id.count <= 255 else {
                throw KeyWrapError.misconfigured("pkcs11 backend: kek_id '\(kek.1)' is not hex (e.g. 01a2, 0x01a2)")
            }
            kekRef = .id(id)
        } else {
            kekRef = .label(kek.1)
        }
        var mechanism = PKCS11WrapMechanism.aesKeyWrapPad
        if let m = options["mechanism"].map(pkcs11Trim), !m.isEmpty {
            guard let parsed = PKCS11WrapMechanism(rawValue: m.lowercased()) else {
                throw KeyWrapError.misconfigured("pkcs11 backend: mechanism '\(m)' unknown (known: \(PKCS11WrapMechanism.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            mechanism = parsed
        }
        var allow = false
        if let a = options["allow_extractable_kek"].map(pkcs11Trim) {
            switch a.lowercased() {
            case "true", "yes", "1", "on": allow = true
            case "false", "no", "0", "off", "": allow = false
            default: throw KeyWrapError.misconfigured("pkcs11 backend: allow_extractable_kek must be true or false, not '\(a)'")
            }
        }
        self.init(modulePath: module,
                  token: token.0 == "token_label" ? .label(token.1) : .serial(token.1),
                  pin: pin.0 == "pin_env" ? .environment(pin.1) : .file(pin.1),
                  kek: kekRef, mechanism: mechanism, allowExtractableKEK: allow)
    }

    /// The equivalent `BackendConfiguration` options (round trip of `init(options:)`).
    public var options: [String: String] {
        var o: [String: String] = ["module": modulePath, "mechanism": mechanism.rawValue]
        switch token {
        case .label(let l): o["token_label"] = l
        case .serial(let s): o["token_serial"] = s
        }
        switch pin {
        case .environment(let v): o["pin_env"] = v
        case .file(let p): o["pin_file"] = p
        }
        switch kek {
        case .label(let l): o["kek_label"] = l
        case .id(let id): o["kek_id"] = Hex.encode(id)
        }
        if allowExtractableKEK { o["allow_extractable_kek"] = "true" }
        return o
    }
}

private func pkcs11Trim(_ s: String) -> String {
    var scalars = Substring(s)
    while let f = scalars.first, f == " " || f == "\t" { scalars.removeFirst() }
    while let l = scalars.last, l == " " || l == "\t" { scalars.removeLast() }
    return String(scalars)
}



