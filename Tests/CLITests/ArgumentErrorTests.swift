// Bad arguments and bad files: each is refused with a clear message and a non-zero status, before any
// token is needed (the module path points nowhere, so reaching the module would fail differently).
import Foundation
import XCTest

final class ArgumentErrorTests: XCTestCase {
    let noModule = ["--module", "/nonexistent/libtensorguard-pkcs11.so"]
    var dir: TemporaryDirectory!

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
    }

    /// XCTest keeps test case instances alive until the run ends: release the directory now.
    override func tearDown() {
        dir = nil
        super.tearDown()
    }

    /// The key file from the fixtures, as bytes.
    func sdkKeyRaw() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: CLI.interop("sdk-key-1.bin"))))
    }

    func sdkKeyNPY() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: CLI.interop("sdk-key-1.npy"))))
    }

    func testHelpForEveryCommand() throws {
        let top = try CLI.ok(["--help"])
        for word in ["token", "key", "encrypt", "decrypt"] { XCTAssertTrue(top.stdout.contains(word), top.transcript) }
        for command in [["token", "list"], ["token", "init"], ["key", "generate"], ["key", "import"], ["key", "list"], ["key", "delete"],
                        ["encrypt"], ["decrypt"]] {
            let r = try CLI.ok(command + ["--help"])
            XCTAssertTrue(r.stdout.contains("USAGE"), r.transcript)
            XCTAssertTrue(r.stdout.contains("--module"), r.transcript)
        }
        XCTAssertTrue(try CLI.ok(["key", "import", "--help"]).stdout.contains("--meta"))
    }

    func testPINIsNeverAnArgumentValue() throws {
        let r = try CLI.run(["key", "list", "--token", "t", "--pin", "1234"] + noModule)
        XCTAssertNotEqual(r.status, 0, r.transcript)
        XCTAssertTrue(r.stderr.contains("Unknown option '--pin'"), r.transcript)
    }

    func testModuleThatCannotBeLoaded() throws {
        try CLI.fails(["token", "list"] + noModule, with: "cannot load PKCS#11 module '/nonexistent/libtensorguard-pkcs11.so'")
        let notELF = try dir.write("module.so", "not a shared object")
        try CLI.fails(["token", "list", "--module", notELF], with: "cannot load PKCS#11 module")
        // A shared object that is not a PKCS#11 module.
        let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
            .first { FileManager.default.fileExists(atPath: $0) }
        if let libc {
            try CLI.fails(["token", "list", "--module", libc], with: "does not export C_GetFunctionList")
        }
        // The environment variable is honoured too.
        try CLI.fails(["token", "list"], with: "cannot load PKCS#11 module '/nonexistent/env.so'",
                      environment: ["TG_PKCS11_MODULE": "/nonexistent/env.so"])
    }

    func testImportMissingFile() throws {
        try CLI.fails(["key", "import", "--label", "k", "--file", dir.file("absent.npy")] + noModule,
                      with: "cannot open key file '\(dir.file("absent.npy"))': No such file or directory")
    }

    func testImportBadNPYHeader() throws {
        var bytes = try sdkKeyNPY()
        bytes[1] = UInt8(ascii: "X")  // \x93NXMPY
        let badMagic = try dir.write("magic.npy", bytes)
        try CLI.fails(["key", "import", "--label", "k", "--file", badMagic] + noModule, with: "bad .npy file: missing the \\x93NUMPY magic")

        let truncated = try dir.write("trunc.npy", Array(try sdkKeyNPY().prefix(1000)))
        try CLI.fails(["key", "import", "--label", "k", "--file", truncated] + noModule, with: "bad .npy file: truncated")

        var text = try sdkKeyNPY()
        let header = String(decoding: text[10..<128], as: UTF8.self).replacingOccurrences(of: "(1024,)", with: "(32,32)")
        text.replaceSubrange(10..<128, with: Array(header.utf8))
        let twoD = try dir.write("2d.npy", text)
        try CLI.fails(["key", "import", "--label", "k", "--file", twoD] + noModule, with: "shape is not a 1-D")
    }

    func testImportWrongDType() throws {
        var bytes = try sdkKeyNPY()
        let header = String(decoding: bytes[10..<128], as: UTF8.self).replacingOccurrences(of: "'<i8'", with: "'<f8'")
        bytes.replaceSubrange(10..<128, with: Array(header.utf8))
        let path = try dir.write("f8.npy", bytes)
        try CLI.fails(["key", "import", "--label", "k", "--file", path] + noModule, with: "wrong dtype")
    }

    func testImportValuesOutsideTernary() throws {
        for (name, base, offset) in [("bad.bin", try sdkKeyRaw(), 0), ("bad.npy", try sdkKeyNPY(), 128)] {
            var bytes = base
            // Entry 7 := 2.
            bytes.replaceSubrange(offset + 56..<offset + 64, with: [2, 0, 0, 0, 0, 0, 0, 0])
            let path = try dir.write(name, bytes)
            let r = try CLI.fails(["key", "import", "--label", "k", "--file", path] + noModule,
                                  with: "entry 7 is not in {-1, 0, 1}")
            XCTAssertFalse(r.stderr.contains(" 2 "), "the bad value itself is not echoed\n\(r.transcript)")
        }
    }

    func testImportRawLengthNotMultipleOf8() throws {
        let path = try dir.write("short.bin", Array(try sdkKeyRaw().prefix(8190)))
        try CLI.fails(["key", "import", "--label", "k", "--file", path] + noModule, with: "8190 bytes is not a multiple of 8")
        let empty = try dir.write("empty.bin", [UInt8]())
        try CLI.fails(["key", "import", "--label", "k", "--file", empty] + noModule, with: "is empty")
    }

    func testImportBadMetadata() throws {
        let key = CLI.interop("sdk-key-1.bin")
        let cases: [(String, String)] = [
            (#"{"params": {"n": 1024, "q": 4294967296"#, "not valid JSON"),
            (#"[1, 2]"#, "not a JSON object"),
            (#"{"algorithm": "N2HE-LWE"}"#, "no \"params\" object"),
            (#"{"params": {"n": 1024, "q": 1099511627776, "t": 65536}}"#, "params.q = 1099511627776 is not supported"),
            (#"{"params": {"n": 1024, "q": 4294967296, "t": 65535}}"#, "params.t = 65535 is not a power of two"),
            (#"{"params": {"n": 1024, "q": 4294967296, "t": 4294967296}}"#, "must be between"),
            (#"{"params": {"n": 1024, "t": 65536}}"#, "params has no \"q\""),
            (#"{"params": {"n": "1024", "q": 4294967296, "t": 65536}}"#, "params.n is not a number"),
            (#"{"params": {"n": 512, "q": 4294967296, "t": 65536, "mu": 0.5}}"#, "holds n = 1024 entries but"),
        ]
        for (i, (json, message)) in cases.enumerated() {
            let meta = try dir.write("m\(i).meta.json", json)
            try CLI.fails(["key", "import", "--label", "k", "--file", key, "--meta", meta] + noModule, with: message)
        }
        try CLI.fails(["key", "import", "--label", "k", "--file", key, "--meta", dir.file("none.json")] + noModule,
                      with: "cannot open metadata file")
        // A meta file that contradicts an explicit option.
        let q48 = try dir.write("q48.meta.json", #"{"params": {"n": 1024, "q": 281474976710656, "t": 65536, "mu": 0.5}}"#)
        try CLI.fails(["key", "import", "--label", "k", "--file", key, "--meta", q48, "--modulus-bits", "32"] + noModule,
                      with: "--modulus-bits 32 contradicts")
        // A consistent one gets as far as loading the module.
        try CLI.fails(["key", "import", "--label", "k", "--file", key, "--meta", q48] + noModule,
                      with: "cannot load PKCS#11 module")
    }

    func testGenerateParameterValidation() throws {
        try CLI.fails(["key", "generate", "--label", "k", "--modulus-bits", "40"] + noModule, with: "--modulus-bits 40 is not supported")
        try CLI.fails(["key", "generate", "--label", "k", "--plaintext-bits", "32"] + noModule, with: "--plaintext-bits 32")
        try CLI.fails(["key", "generate", "--label", "k", "--dimension", "0"] + noModule, with: "dimension 0")
        try CLI.fails(["key", "generate", "--label", "k", "--noise-milli", "0"] + noModule, with: "--noise-milli 0")
        try CLI.fails(["key", "generate", "--label", "k", "--id", "xyz"] + noModule, with: "--id must be")
        try CLI.fails(["key", "generate", "--label", ""] + noModule, with: "--label must not be empty")
        try CLI.fails(["key", "generate"] + noModule, with: "--label")
    }

    func testEncryptArgumentErrors() throws {
        let base = ["encrypt", "--key", "k", "--output", dir.file("o.ct")] + noModule
        try CLI.fails(base + ["--format", "lwe3", "--values", "[1]"], with: "lwe3")
        try CLI.fails(base + ["--format", "lwe1"], with: "give exactly one of --values JSON or --input FILE")
        let values: [(String, String)] = [
            ("[1.5]", "element 0 ('1.5') is not an integer"),
            ("[]", "--values is empty"),
            (#"{"a": 1}"#, "must be a JSON array of integers"),
            ("[1, 2", "must be a JSON array of integers"),
            ("[1, true]", "element 1 ('true') is not an integer"),
            ("[99999999999999999999]", "does not fit in a signed 64-bit integer"),
        ]
        for (v, message) in values {
            try CLI.fails(base + ["--format", "lwe2", "--values", v], with: message)
        }
        // Extreme int64 values are accepted (the module reduces them mod t); the failure is the module path.
        try CLI.fails(base + ["--format", "lwe2", "--values", "[-9223372036854775808, 9223372036854775807]"],
                      with: "cannot load PKCS#11 module")
        let odd = try dir.write("odd.int64", [UInt8](repeating: 1, count: 12))
        try CLI.fails(base + ["--format", "lwe1", "--input", odd], with: "has 12 bytes, not a multiple of 8")
        let empty = try dir.write("empty.int64", [UInt8]())
        try CLI.fails(base + ["--format", "lwe1", "--input", empty], with: "is empty")
        try CLI.fails(base + ["--format", "lwe1", "--input", dir.file("none.int64")], with: "cannot open plaintext file")
        try CLI.fails(base + ["--format", "lwe1", "--values", "[1]", "--input", odd], with: "give exactly one of")
    }

    func testDecryptBadCiphertexts() throws {
        let base = ["decrypt", "--key", "k"] + noModule
        try CLI.fails(base + ["--input", dir.file("none.ct")], with: "cannot open ciphertext file")
        try CLI.fails(base + ["--input", CLI.interop("sdk-key-1.bin")], with: "magic is not LWE1, LWE2 or LWS1")
        let ct = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CLI.interop("sdk-key-1-lwe1-q32-k8.ct"))))
        let truncated = try dir.write("trunc.ct", Array(ct.prefix(1000)))
        try CLI.fails(base + ["--input", truncated], with: "1000 bytes, but its header means 65613 bytes")
        var lwe2 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CLI.interop("sdk-key-1-lwe2-q32-k8.ct"))))
        lwe2[12] = 0x01  // seeded flag cleared
        let unseeded = try dir.write("unseeded.ct", lwe2)
        try CLI.fails(base + ["--input", unseeded], with: "seeded flag")
        let tiny = try dir.write("tiny.ct", Array("LWE".utf8))
        try CLI.fails(base + ["--input", tiny], with: "too short")
    }
}
