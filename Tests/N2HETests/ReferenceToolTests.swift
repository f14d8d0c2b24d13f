import Foundation
import XCTest
@testable import N2HE

/// Interop in both directions with the independent numpy implementation in tools/n2he_reference.py.
final class ReferenceToolTests: XCTestCase {
    func testNumpyReferenceDecryptsOurCiphertexts() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = try N2HESecretKey.generate(n: 256)
        let keyURL = dir.appendingPathComponent("key.bin")
        try Data(key.rawRepresentation()).write(to: keyURL)
        let messages: [Int64] = [0, 1, -1, 65535, 65536, 40000, -123456789, Int64.max, 7, 32768]
        let expected = messages.map { (($0 % 65536) + 65536) % 65536 }
        for bits in [32, 48] {
            let cipher = try N2HECipher(key: key, parameters: try N2HEParameters(n: 256, modulusBits: bits, noiseMilli: 500))
            for format in N2HECiphertextFormat.allCases {
                let ctURL = dir.appendingPathComponent("ct-\(format)-\(bits).bin")
                try Data(try cipher.encrypt(messages, format: format, threads: 2)).write(to: ctURL)
                let out = try runReferenceTool(["decrypt", "--key", keyURL.path, "--ct", ctURL.path, "--modulus-bits", "\(bits)"])
                XCTAssertEqual(try JSONDecoder().decode([Int64].self, from: out), expected, "\(format) q=2^\(bits)")
            }
        }
    }

    func testWeDecryptNumpyReferenceCiphertextsAndKnownAnswers() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = try N2HESecretKey.generate(n: 128)
        let keyURL = dir.appendingPathComponent("key.npy")
        try Data(key.npyRepresentation()).write(to: keyURL)   // numpy must load our .npy writer's output
        for bits in [32, 48] {
            let cipher = try N2HECipher(key: key, parameters: try N2HEParameters(n: 128, modulusBits: bits))
            for format in ["lwe1", "lwe2"] {
                let ctURL = dir.appendingPathComponent("ref-\(format)-\(bits).ct")
                _ = try runReferenceTool(["encrypt", "--key", keyURL.path, "--format", format, "--modulus-bits", "\(bits)",
                                          "--values", "[3, -3, 70000, 65535, 0]", "--out", ctURL.path])
                let ct = try [UInt8](Data(contentsOf: ctURL))
                XCTAssertEqual(try cipher.decrypt(ct), [3, 65533, 4464, 65535, 0], "\(format) q=2^\(bits)")
            }
        }
        // TV1 through the reference (numpy's own PCG64) is byte-identical to ours.
        let tvKey = try makeKey([1, 0, -1, 1, -1, 0, 0, 1, -1, -1, 1, 0, 1, 0, -1, 1])
        let tvKeyURL = dir.appendingPathComponent("tv1.bin")
        try Data(tvKey.rawRepresentation()).write(to: tvKeyURL)
        let tvURL = dir.appendingPathComponent("tv1.ct")
        _ = try runReferenceTool(["encrypt", "--key", tvKeyURL.path, "--format", "lwe2", "--modulus-bits", "32",
                                  "--values", "[1, 42, 65535]", "--noise", "[0, 1, -1]", "--seed", hex([UInt8](0..<32)),
                                  "--out", tvURL.path])
        XCTAssertEqual(hex(try Data(contentsOf: tvURL)), "4c574532030000001000000003000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f62fc531000000000c1bcabc900000000b16a592c00000000")
    }

    func testReferenceExpansionMatchesOursForRandomSeeds() throws {
        var rng = SplitMix64(state: 99)
        for bits in [32, 48] {
            for _ in 0..<3 {
                var seed = (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                seed[0] = rng.next() % 2 == 0 ? 0 : seed[0]   // also shorter entropy (leading zero words)
                let ours = try N2HEMatrixExpansion.expand(seed: seed, rows: 3, dimension: 333, modulusBits: bits)
                let out = try runReferenceTool(["expand", "--seed", hex(seed), "--k", "3", "--n", "333", "--modulus-bits", "\(bits)"])
                struct Expansion: Decodable { let prefix: [UInt64]; let sha256: String }
                let reference = try JSONDecoder().decode(Expansion.self, from: out)
                XCTAssertEqual(Array(ours.prefix(4)), reference.prefix)
                XCTAssertEqual(sha256(littleEndianBytes(ours)), reference.sha256)
            }
        }
    }
}
