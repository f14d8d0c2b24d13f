import Synchronization

/// A backend as described by configuration: a kind plus string options (already resolved from env/files by
/// the config layer; secret-bearing options must never be logged).
public struct BackendConfiguration: Sendable, Equatable {
    public var kind: String
    public var options: [String: String]

    public init(kind: String, options: [String: String] = [:]) {
        self.kind = kind
        self.options = options
    }

    /// The zero-config default: `local`.
    public static let `default` = BackendConfiguration(kind: LocalBackend.kind)

    /// The options, for a backend of `kind`; `.misconfigured` when this configuration names another kind.
    public func options(forKind expected: String) throws -> [String: String] {
        guard kind == expected else { throw KeyWrapError.misconfigured("backend kind '\(kind)' is not '\(expected)'") }
        return options
    }
}

/// Maps a configuration kind to an implementation. A small registry: `local` is built in, later backends
/// register themselves (`BackendFactory.register(kind:_:)`). Thread-safe.
public enum BackendFactory {
    public typealias Maker = @Sendable (BackendConfiguration) throws -> any KeyWrapBackend

    private static let registry = Mutex<[String: Maker]>([
        LocalBackend.kind: { _ in LocalBackend() },
        PKCS11Backend.kind: { try PKCS11Backend(configuration: $0) },
        AWSKMSBackend.kind: { try AWSKMSBackend(configuration: $0) },
        GCPKMSBackend.kind: { try GCPKMSBackend(configuration: $0) },
        AzureKeyVaultBackend.kind: { try AzureKeyVaultBackend(configuration: $0) },
    ])

    /// Registers (or replaces) the maker for `kind`.
    public static func register(kind: String, _ maker: @escaping Maker) {
        registry.withLock { $0[kind] = maker }
    }

    /// Registered kinds, sorted.
    public static var kinds: [String] {
        registry.withLock { $0.keys.sorted() }
    }

    /// Builds the backend for `configuration`. Unknown kind → `KeyWrapError.misconfigured`.
    public static func make(_ configuration: BackendConfiguration) throws -> any KeyWrapBackend {
        guard let maker = registry.withLock({ $0[configuration.kind] }) else {
            throw KeyWrapError.misconfigured("unknown backend kind '\(configuration.kind)' (known: \(kinds.joined(separator: ", ")))")
        }
        return try maker(configuration)
    }
}
