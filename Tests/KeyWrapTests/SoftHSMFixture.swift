import CryptoCore
import Foundation
@testable import KeyWrap
import TokenStore
import XCTest
import TestSupport

/// A SoftHSM2 installation private to one test: its own SOFTHSM2_CONF and token directory in a temp dir,
/// one token initialised with softhsm2-util, the backend user PIN in a 0600 file.
final class SoftHSMFixture {
    static let modulePath = "/usr/lib/softhsm/libsofthsm2.so"
    static let util = "/usr/bin/softhsm2-util"
    static var available: Bool {
        FileManager.default.fileExists(atPath: modulePath) && FileManager.default.isExecutableFile(atPath: util)
    }

    let root: String
    let tokenDir: String
    let confPath: String
    let pinFile: String
    let tokenLabel = "tg-backend"
    let soPIN = "so-1234"
    let userPIN = "user-5678"

    /// Creates the directory and conf and points SOFTHSM2_CONF at it (the module reads it at C_Initialize).
    /// No backend of an earlier fixture may still be alive (the module would keep the old configuration).
    init(file: StaticString = #filePath, line: UInt = #line) throws {
        guard Self.available else { throw MissingDependency("SoftHSM2 is not installed (\(Self.modulePath); Debian package softhsm2, run `make deps`)") }
        root = FileManager.default.temporaryDirectory.path + "/tg-hsm-\(getpid())-\(UUID().uuidString.prefix(8))"
        tokenDir = root + "/tokens"
        confPath = root + "/softhsm2.conf"
        pinFile = root + "/backend.pin"
        try FileManager.default.createDirectory(atPath: tokenDir, withIntermediateDirectories: true)
        try "directories.tokendir = \(tokenDir)\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
            .write(toFile: confPath, atomically: true, encoding: .utf8)
        setenv("SOFTHSM2_CONF", confPath, 1)
        try run(Self.util, ["--init-token", "--free", "--label", tokenLabel, "--so-pin", soPIN, "--pin", userPIN])
        try writePIN(userPIN)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func writePIN(_ pin: String) throws {
        try (pin + "\n").write(toFile: pinFile, atomically: true, encoding: .utf8)
        chmod(pinFile, 0o600)
    }

    func config(kek: PKCS11KEKReference = .label("tg-kek-1"), mechanism: PKCS11WrapMechanism = .aesKeyWrapPad,
                allowExtractable: Bool = false) -> PKCS11BackendConfig {
        PKCS11BackendConfig(modulePath: Self.modulePath, token: .label(tokenLabel), pin: .file(pinFile), kek: kek,
                            mechanism: mechanism, allowExtractableKEK: allowExtractable)
    }

    func backend(kek: PKCS11KEKReference = .label("tg-kek-1"), mechanism: PKCS11WrapMechanism = .aesKeyWrapPad,
                 allowExtractable: Bool = false) throws -> PKCS11Backend {
        try PKCS11Backend(configuration: config(kek: kek, mechanism: mechanism, allowExtractable: allowExtractable))
    }

    /// The SoftHSM directory of our token (tokens/<uuid>).
    func tokenSubdirectory() throws -> String {
        let entries = try FileManager.default.contentsOfDirectory(atPath: tokenDir).filter { !$0.hasPrefix(".") }
        guard entries.count == 1, let only = entries.first else { throw MissingDependency("unexpected SoftHSM2 token directory layout: \(entries)") }
        return tokenDir + "/" + only
    }

    @discardableResult
    func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["SOFTHSM2_CONF"] = confPath
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "SoftHSMFixture", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(tool) \(args.first ?? "") failed: \(text)"])
        }
        return text
    }
}

/// Asserts that `body` throws the KeyWrapError `expected` (by case) and returns it.
@discardableResult
func expectKeyWrapError(_ expected: String, file: StaticString = #filePath, line: UInt = #line,
                        _ body: () throws -> Void) -> KeyWrapError? {
    do {
        try body()
        XCTFail("expected \(expected), got success", file: file, line: line)
        return nil
    } catch let e as KeyWrapError {
        XCTAssertEqual(caseName(e), expected, "\(e)", file: file, line: line)
        return e
    } catch StoreError.backend(let e) {
        XCTAssertEqual(caseName(e), expected, "\(e)", file: file, line: line)
        return e
    } catch {
        XCTFail("expected KeyWrapError.\(expected), got \(error)", file: file, line: line)
        return nil
    }
}

func caseName(_ e: KeyWrapError) -> String {
    switch e {
    case .unreachable: return "unreachable"
    case .removed: return "removed"
    case .authenticationFailed: return "authenticationFailed"
    case .keyNotFound: return "keyNotFound"
    case .policyViolation: return "policyViolation"
    case .integrityFailure: return "integrityFailure"
    case .misconfigured: return "misconfigured"
    }
}
