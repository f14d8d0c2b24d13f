import XCTest
@testable import N2HE

final class KeyAndParameterTests: XCTestCase {
    func testParameterValidation() throws {
        XCTAssertEqual(N2HEParameters.default, try N2HEParameters())
        XCTAssertEqual(N2HEParameters.default.n, 1024)
        XCTAssertEqual(N2HEParameters.default.modulusBits, 32)
        XCTAssertEqual(N2HEParameters.default.plaintextBits, 16)
        XCTAssertEqual(N2HEParameters.default.noiseMilli, 5120)
        XCTAssertEqual(N2HEParameters.default.scale, 1 << 16)
        XCTAssertNoThrow(try N2HEParameters(n: 1, modulusBits: 48, plaintextBits: 47, noiseMilli: 1))
        XCTAssertNoThrow(try N2HEParameters(n: 65536, modulusBits: 32, plaintextBits: 1, noiseMilli: 100_000))
        assertThrows(.unsupportedParameters(.dimensionOutOfRange(0))) { try N2HEParameters(n: 0) }
        assertThrows(.unsupportedParameters(.dimensionOutOfRange(65537))) { try N2HEParameters(n: 65537) }
        assertThrows(.unsupportedParameters(.dimensionOutOfRange(-1))) { try N2HEParameters(n: -1) }
        assertThrows(.unsupportedParameters(.unsupportedModulusBits(64))) { try N2HEParameters(modulusBits: 64) }
        assertThrows(.unsupportedParameters(.unsupportedModulusBits(31))) { try N2HEParameters(modulusBits: 31) }
        assertThrows(.unsupportedParameters(.plaintextBitsOutOfRange(32))) { try N2HEParameters(modulusBits: 32, plaintextBits: 32) }
        assertThrows(.unsupportedParameters(.plaintextBitsOutOfRange(0))) { try N2HEParameters(plaintextBits: 0) }
        assertThrows(.unsupportedParameters(.noiseOutOfRange(0))) { try N2HEParameters(noiseMilli: 0) }
        assertThrows(.unsupportedParameters(.noiseOutOfRange(100_001))) { try N2HEParameters(noiseMilli: 100_001) }
    }

    func testSecurityEstimateIsHonest() throws {
        // The SDK calls these 128-bit and 192-bit; the HE standard says otherwise (N2HE-SPEC.md §5).
        let sdk128 = N2HEParameters.default.estimatedClassicalSecurityBits
        let sdk192 = try N2HEParameters(n: 1024, modulusBits: 48).estimatedClassicalSecurityBits
        XCTAssertLessThan(sdk128, 128)
        XCTAssertLessThan(sdk192, sdk128)
        XCTAssertGreaterThanOrEqual(try N2HEParameters(n: 4096, modulusBits: 48).estimatedClassicalSecurityBits, 192)
        XCTAssertEqual(try N2HEParameters(n: 65536, modulusBits: 32).estimatedClassicalSecurityBits, 256)
    }

    func testGeneratedKeysAreUniformTernary() throws {
        let key = try N2HESecretKey.generate(n: 65536)
        let raw = key.rawRepresentation()
        var counts = [Int64: Int]()
        for i in 0..<key.n {
            let v = raw.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
            counts[v, default: 0] += 1
        }
        XCTAssertEqual(Set(counts.keys), [-1, 0, 1])
        for (_, c) in counts { XCTAssertEqual(Double(c), 65536.0 / 3, accuracy: 800) }  // ≈ 6.6 σ
        XCTAssertFalse(key.isEqual(to: try N2HESecretKey.generate(n: 65536)))
        assertThrows(.unsupportedParameters(.dimensionOutOfRange(0))) { try N2HESecretKey.generate(n: 0) }
    }

    func testRawImportValidation() throws {
        let good = littleEndianBytes([1, 0, -1, 1] as [Int64])
        XCTAssertEqual(try N2HESecretKey(rawRepresentation: good).rawRepresentation(), good)
        XCTAssertEqual(try N2HESecretKey(rawRepresentation: good, expectedDimension: 4).n, 4)
        assertThrows(.invalidKeyLength(expected: 64, actual: 32)) { try N2HESecretKey(rawRepresentation: good, expectedDimension: 8) }
        assertThrows(.invalidKeyLength(expected: nil, actual: 0)) { try N2HESecretKey(rawRepresentation: [UInt8]()) }
        assertThrows(.invalidKeyLength(expected: nil, actual: 31)) { try N2HESecretKey(rawRepresentation: Array(good.dropLast())) }
        assertThrows(.invalidKeyLength(expected: nil, actual: 8 * 65537)) {
            try N2HESecretKey(rawRepresentation: [UInt8](repeating: 0, count: 8 * 65537))
        }
        for bad: Int64 in [2, -2, 256, Int64.min, Int64.max, 1 << 32] {
            assertThrows(.invalidKeyEntry(index: 2)) {
                try N2HESecretKey(rawRepresentation: littleEndianBytes([1, 0, bad, 1]))
            }
        }
        // −1 must be all-ones: FF…FE or 01 00…00 FF are not −1.
        var notMinusOne = good; notMinusOne[16 + 7] = 0x7F
        assertThrows(.invalidKeyEntry(index: 2)) { try N2HESecretKey(rawRepresentation: notMinusOne) }
    }

    func npy(header: String, version: (UInt8, UInt8) = (1, 0), data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version.0, version.1]
        let h = Array(header.utf8)
        if version.0 == 1 {
            out += [UInt8(h.count & 0xFF), UInt8(h.count >> 8)]
        } else {
            out += [UInt8(h.count & 0xFF), UInt8((h.count >> 8) & 0xFF), UInt8(h.count >> 16), 0]
        }
        return out + h + data
    }

    func testNPYImportAcceptsVariants() throws {
        let data = littleEndianBytes([1, -1, 0] as [Int64])
        let headers = [
            "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }          \n",
            "{'descr': '<i8', 'fortran_order': False, 'shape': (3,)}\n",
            "{\"shape\": ( 3 , ), \"fortran_order\": False, \"descr\": \"<i8\"}\n",
        ]
        for h in headers {
            XCTAssertEqual(try N2HESecretKey(npyFile: npy(header: h, data: data)).rawRepresentation(), data, h)
            XCTAssertEqual(try N2HESecretKey(npyFile: npy(header: h, version: (2, 0), data: data)).rawRepresentation(), data, h)
        }
        let written = try N2HESecretKey(rawRepresentation: data).npyRepresentation()
        XCTAssertEqual(written.count % 64, 24 % 64, "header is 64-byte aligned, then 8n bytes")
        XCTAssertEqual(try N2HESecretKey(npyFile: written).rawRepresentation(), data)
    }

    func testNPYImportRejectsMalformations() {
        let data = littleEndianBytes([1, -1, 0] as [Int64])
        let ok = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }\n"
        func rejects(_ file: [UInt8], _ defect: N2HEError.KeyFileDefect, line: UInt = #line) {
            assertThrows(.malformedKeyFile(defect), line: line) { try N2HESecretKey(npyFile: file) }
        }
        rejects([], .badMagic)
        rejects(Array("NUMPY!!!".utf8), .badMagic)
        rejects(Array(npy(header: ok, data: data).prefix(7)), .truncated)
        rejects(Array(npy(header: ok, data: data).prefix(9)), .truncated)
        rejects(Array(npy(header: ok, data: data).prefix(30)), .truncated)
        rejects(npy(header: ok, version: (3, 0), data: data), .unsupportedVersion(major: 3, minor: 0))
        rejects(npy(header: ok, version: (1, 1), data: data), .unsupportedVersion(major: 1, minor: 1))
        rejects(npy(header: ok, data: Array(data.dropLast())), .truncated)
        rejects(npy(header: ok, data: data + [0]), .trailingBytes)
        rejects(npy(header: "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }\n", data: data), .unsupportedDType)
        rejects(npy(header: "{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }\n", data: data), .unsupportedDType)
        rejects(npy(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n", data: data), .unsupportedDType)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': True, 'shape': (3,), }\n", data: data), .fortranOrder)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': Maybe, 'shape': (3,), }\n", data: data), .headerSyntax)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 1), }\n", data: data), .badShape)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (), }\n", data: data), .badShape)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (3), }\n", data: data), .badShape)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (0,), }\n", data: []), .badShape)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", data: data), .badShape)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (-3,), }\n", data: data), .badShape)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False}\n", data: data), .missingField)
        rejects(npy(header: "{'descr': '<i8', 'descr': '<i8', 'fortran_order': False, 'shape': (3,)}\n", data: data), .duplicateField)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), 'x': 1}\n", data: data), .unknownField)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", data: data), .headerNotTerminated)
        rejects(npy(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), } x\n", data: data), .headerSyntax)
        rejects(npy(header: "['descr', '<i8']\n", data: data), .headerSyntax)
        rejects(npy(header: "{'descr: '<i8'}\n", data: data), .headerSyntax)
        rejects(npy(header: "{'descr': '<i8' 'fortran_order': False}\n", data: data), .headerSyntax)
        rejects(npy(header: "{'déscr': '<i8'}\n", data: data), .headerNotASCII)
        // Valid header, invalid entries: the raw-form validation applies.
        assertThrows(.invalidKeyEntry(index: 1)) {
            try N2HESecretKey(npyFile: npy(header: ok, data: littleEndianBytes([1, 5, 0] as [Int64])))
        }
        assertThrows(.dimensionMismatch(expected: 1024, actual: 3)) {
            try N2HESecretKey(npyFile: npy(header: ok, data: data), expectedDimension: 1024)
        }
    }
}
