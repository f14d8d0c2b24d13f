import XCTest
final class TokenStoreTestsPlaceholder: XCTestCase { func testNothing() {} }
