import CryptoCore
import XCTest

final class HexTests: XCTestCase {
    func testEncodeIsLowerCaseTwoDigitsPerByte() {
        XCTAssertEqual(Hex.encode([0x00, 0x0f, 0xa0, 0xff]), "000fa0ff")
        XCTAssertEqual(Hex.encode([UInt8]()), "")
        XCTAssertEqual(Hex.encode([UInt8](0...255)).utf8.count, 512)
    }

    func testDecodeRoundTripsAndIsStrictByDefault() {
        let all = [UInt8](0...255)
        XCTAssertEqual(Hex.decode(Hex.encode(all)), all)
        XCTAssertEqual(Hex.decode("0A1b"), [0x0a, 0x1b])
        XCTAssertEqual(Hex.decode(""), [])
        for bad in ["0", "abc", "0x01", "01:02", "zz", "+f", " 01", "0١"] {
            XCTAssertNil(Hex.decode(bad), bad)
        }
    }

    func testOperatorInputAcceptsPrefixAndColons() {
        XCTAssertEqual(Hex.decode("0x01A2", operatorInput: true), [0x01, 0xa2])
        XCTAssertEqual(Hex.decode("0X01:a2:FF", operatorInput: true), [0x01, 0xa2, 0xff])
        XCTAssertNil(Hex.decode("0x1", operatorInput: true))
        XCTAssertNil(Hex.decode("01-02", operatorInput: true))
    }
}

final class ZeroPaddingTests: XCTestCase {
    func testPadsToWidthAndNeverTruncates() {
        XCTAssertEqual(7.zeroPadded(3), "007")
        XCTAssertEqual(2026.zeroPadded(4), "2026")
        XCTAssertEqual(123_456.zeroPadded(3), "123456")
        XCTAssertEqual(UInt(0xA4).zeroPadded(8, radix: 16, uppercase: true), "000000A4")
        XCTAssertEqual(Int32(0).zeroPadded(2), "00")
    }
}
