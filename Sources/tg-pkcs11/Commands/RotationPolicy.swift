// The parts of a token's policy (module configuration, docs/policies.md) that `key list` turns into rotation
// reminders. Read through Cryptoki's OperatorConfiguration: the same discovery and schema as the module.
import Cryptoki

struct RotationPolicy {
    var maxKeyUses: UInt64?
    var maxKeyAgeDays: Int?
    var rotationReminderDays: Int?

    /// The policy of the token in `context` (matched by slot description = `tokens[].name`); nil when the
    /// configuration has none for it (another module) or cannot be read (a note on stderr).
    static func load(_ context: TokenContext) -> RotationPolicy? {
        guard let slot = try? context.module.slotInfo(context.slot) else { return nil }
        do {
            guard let p = try OperatorConfiguration.tokenPolicies(explicitPath: nil).policies[slot.description] else { return nil }
            return RotationPolicy(maxKeyUses: p.maxKeyUses, maxKeyAgeDays: p.maxKeyAgeDays,
                                  rotationReminderDays: p.rotationReminderDays)
        } catch {
            writeStandardError("note: no rotation reminders: \(error)\n")
            return nil
        }
    }

    /// Why the key should be rotated now, or nil. Only active keys (those that may encrypt) are reminded.
    func reminder(for k: KeySummary) -> String? {
        guard k.state == "active" else { return nil }
        if let max = maxKeyAgeDays, let age = k.ageDays, age >= UInt(max) {
            return "rotate now: max_key_age_days \(max) reached, encryption is refused"
        }
        if let max = maxKeyUses, let uses = k.useCount, UInt64(uses) >= max {
            return "rotate now: max_key_uses \(max) reached, encryption is refused"
        }
        if let days = rotationReminderDays, let age = k.ageDays, age >= UInt(days) {
            return "rotation due: \(age) days old (rotation_reminder_days \(days))"
        }
        if let max = maxKeyUses, let uses = k.useCount, UInt64(uses) * 10 >= max * 9 {
            return "rotation due: \(uses) of max_key_uses \(max)"
        }
        return nil
    }
}
