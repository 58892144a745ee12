import XCTest
@testable import Tern

final class TernTests: XCTestCase {
    func testVersion() {
        XCTAssertFalse(Tern.version.string.isEmpty)
        XCTAssertEqual(Tern.version.number >> 16, 0)
    }

    func testQuantizeAndGemm() throws {
        let rows = 32, cols = 256
        let w = (0..<rows * cols).map { Float(($0 * 7) % 3 - 1) * 0.5 }
        let packed = try Tern.quantize(w, rows: rows, cols: cols, format: .tq2_0)
        XCTAssertEqual(packed.count, rows * cols / 256 * 66)
        let m = try Matrix(weights: w, rows: rows, cols: cols, format: .i2s)
        let x = (0..<cols).map { Float($0 % 5) - 2 }
        let y = try m.gemm(x, tokens: 1)
        XCTAssertEqual(y.count, rows)
    }

    func testErrorCarriesStatusAndMessage() {
        XCTAssertThrowsError(try Matrix(weights: [Float](repeating: 0, count: 100), rows: 1, cols: 100,
                                        format: .i2s)) { error in
            let e = error as! TernError
            XCTAssertEqual(e.status, 2)
            XCTAssertTrue(e.message.contains("128"))
        }
    }
}
