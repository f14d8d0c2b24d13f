import XCTest
@testable import N2HE

/// The real SDK fixtures in repoRoot/../shared/interop.
final class InteropFixtureTests: XCTestCase {
    func testEveryCaseDecryptsWithBothKeyForms() throws {
        let caseFile = try Fixtures.cases()
        XCTAssertEqual(caseFile.cases.count, 12)
        let keys = [("npy", try Fixtures.sdkKeyNPY()), ("bin", try Fixtures.sdkKeyRaw())]
        for c in caseFile.cases {
            let ct = try Fixtures.data(c.file)
            XCTAssertEqual(sha256(ct), c.sha256, c.file)
            let params = try N2HEParameters(n: c.n, modulusBits: c.modulus_bits, plaintextBits: c.plaintext_bits, noiseMilli: 500)
            for (form, key) in keys {
                let cipher = try N2HECipher(key: key, parameters: params)
                XCTAssertEqual(try cipher.plaintextByteCount(ciphertext: ct), 8 * c.k, c.file)
                let info = try N2HECiphertextInfo(parsing: ct, expectedDimension: c.n)
                XCTAssertEqual(info.format, c.format == "LWE1" ? .lwe1 : .lwe2, c.file)
                XCTAssertEqual(info.count, c.k)
                XCTAssertEqual(try cipher.decrypt(ct), c.plaintext, "\(c.file) with the \(form) key")
                XCTAssertEqual(try cipher.decrypt(ct, threads: 3), c.plaintext, "\(c.file) with the \(form) key, 3 threads")
            }
        }
    }

    func testWrongModulusDoesNotDecryptFixture() throws {
        let key = try Fixtures.sdkKeyRaw()
        let c = try XCTUnwrap(try Fixtures.cases().cases.first { $0.file == "sdk-key-1-lwe2-q48-k256.ct" })
        let cipher = try N2HECipher(key: key, parameters: try N2HEParameters(n: 1024, modulusBits: 32))
        XCTAssertNotEqual(try cipher.decrypt(try Fixtures.data(c.file)), c.plaintext)
    }

    func testKeyFormsAgreeAndRoundTripByteExact() throws {
        let npy = try Fixtures.data("sdk-key-1.npy")
        let raw = try Fixtures.data("sdk-key-1.bin")
        let fromNPY = try N2HESecretKey(npyFile: npy, expectedDimension: 1024)
        let fromRaw = try N2HESecretKey(rawRepresentation: raw, expectedDimension: 1024)
        XCTAssertTrue(fromNPY.isEqual(to: fromRaw))
        XCTAssertEqual(fromNPY.rawRepresentation(), raw)
        XCTAssertEqual(fromRaw.npyRepresentation(), npy, "npy writer must reproduce numpy's np.save bytes")
        fromRaw.withRawRepresentation { XCTAssertEqual(Array($0), raw) }
    }

    func testFixtureKeyEncryptsForItself() throws {
        let key = try Fixtures.sdkKeyNPY()
        for bits in [32, 48] {
            let cipher = try N2HECipher(key: key, parameters: try N2HEParameters(n: 1024, modulusBits: bits, noiseMilli: 500))
            for format in N2HECiphertextFormat.allCases {
                let m: [Int64] = [0, 1, 65535, 32768, -7]
                XCTAssertEqual(try cipher.decrypt(try cipher.encrypt(m, format: format)), [0, 1, 65535, 32768, 65529])
            }
        }
    }
}
