// Read-only access to the token policies for the operator CLI (`tg-pkcs11 key list` reminders): the same
// discovery and schema as C_Initialize.

/// One token's `policy:` section as the module applies it.
public struct OperatorTokenPolicy: Sendable, Equatable, Codable {
    public let minN2HESecurityBits: Int
    /// Mechanism names (`CKM_…`, or `0x…` for one without a name); nil: every mechanism.
    public let allowedMechanisms: [String]?
    public let allowExtractable: Bool
    public let maxKeyUses: UInt64?
    public let maxKeyAgeDays: Int?
    public let rotationReminderDays: Int?

    init(_ p: TokenPolicy) {
        minN2HESecurityBits = p.minN2HESecurityBits
        allowedMechanisms = p.allowedMechanisms.map { $0.map(Mechanisms.name).sorted() }
        allowExtractable = p.allowExtractable
        maxKeyUses = p.maxKeyUses
        maxKeyAgeDays = p.maxKeyAgeDays
        rotationReminderDays = p.rotationReminderDays
    }
}

extension OperatorConfiguration {
    /// Every configured token's policy by token name (`tokens[].name`, the slot description), from the
    /// configuration C_Initialize would load (`explicitPath`, else TENSORGUARD_PKCS11_CONF, ...).
    /// Errors are `OperatorConfigurationError`.
    public static func tokenPolicies(explicitPath: String?) throws -> (source: String, policies: [String: OperatorTokenPolicy]) {
        let config: Configuration
        do {
            config = try ConfigurationLoader.load(explicitPath: explicitPath)
        } catch let e as ConfigurationError {
            throw OperatorConfigurationError(e.message)
        }
        var out: [String: OperatorTokenPolicy] = [:]
        for t in config.tokens { out[t.name] = OperatorTokenPolicy(t.policy) }
        return (config.source, out)
    }
}
