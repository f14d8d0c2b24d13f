import XCTest
final class CryptoCoreTestsPlaceholder: XCTestCase { func testNothing() {} }
