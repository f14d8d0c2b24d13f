// tg-pkcs11: the operator tool for what pkcs11-tool cannot do with a vendor key type. The token, key and
// encrypt/decrypt commands talk to the module only through PKCS#11 (dlopen, C_GetFunctionList, C_* calls); the
// commands for what sits behind the module (backend, rotate-kek, backup, restore, token show/delete, doctor,
// audit) read its configuration, store and backend directly. See docs/cli.md.
import ArgumentParser

@main
struct TGPKCS11: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tg-pkcs11",
        abstract: "Operate TensorGuard PKCS#11 tokens: N2HE keys, SDK ciphertexts, key-wrapping backends, KEK rotation, the audit log, backups and host checks.",
        discussion: """
            The module is loaded from --module, $TG_PKCS11_MODULE, or libtensorguard-pkcs11.so next to this \
            executable; the module finds its own configuration ($TENSORGUARD_PKCS11_CONF, ...). PINs come from \
            --pin-env VAR, --pin-file PATH, $TG_PKCS11_PIN, or a prompt without echo — never from a command-line \
            value, which every local user can read.
            """,
        subcommands: [TokenCommand.self, KeyCommand.self, Encrypt.self, Decrypt.self, Add.self, BackendCommand.self, RotateKEK.self, AuditCommand.self,
                     Backup.self, Restore.self, Doctor.self])
}
