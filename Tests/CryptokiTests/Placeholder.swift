import XCTest
final class CryptokiTestsPlaceholder: XCTestCase { func testNothing() {} }
