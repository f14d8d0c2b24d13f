import XCTest
final class N2HETestsPlaceholder: XCTestCase { func testNothing() {} }
