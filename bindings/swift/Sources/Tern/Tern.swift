// A thin Swift wrapper over libtern's C API (module CTern): errors become `TernError`, handles
// become classes that free themselves.
import CTern

/// A failed tern call: the C status and the library's message.
public struct TernError: Error, CustomStringConvertible {
    public let status: Int32
    public let message: String
    public var description: String {
        "tern: \(String(cString: tern_status_name(status))): \(message)"
    }
}

/// Runs a C call and throws on a non-zero status. Swift calls run synchronously on the calling
/// thread, so the thread-local last error belongs to this call.
@inline(__always)
func check(_ status: tern_status) throws {
    if status != 0 {
        let p = tern_last_error_message()
        throw TernError(status: Int32(status), message: p.map { String(cString: $0) } ?? "")
    }
}

public enum Format: Int32 {
    case i2s = 1, tl1 = 2, tl2 = 3, tq1_0 = 4, tq2_0 = 5

    var layout: tern_layout {
        tern_layout(struct_size: UInt32(MemoryLayout<tern_layout>.size), format: rawValue,
                    variant: 0, tile_rows: 0, tile_k: 0, simd_rows: 0)
    }
}

public enum Tern {
    /// The library version, e.g. "0.1.0", and its packed number (MAJOR<<16 | MINOR<<8 | PATCH).
    public static var version: (number: UInt32, string: String) {
        (tern_version(), String(cString: tern_version_string()))
    }

    /// Bytes of a packed `rows × cols` matrix in `format`.
    public static func packedSize(_ format: Format, rows: Int, cols: Int) throws -> Int {
        var layout = format.layout
        var n = 0
        try check(tern_packed_size(&layout, Int64(rows), Int64(cols), &n))
        return n
    }

    /// Ternarizes (BitNet absmean) and packs a row-major matrix.
    public static func quantize(_ w: [Float], rows: Int, cols: Int, format: Format) throws -> [UInt8] {
        guard w.count >= rows * cols else {
            throw TernError(status: 2, message: "w has \(w.count) values, need \(rows * cols)")
        }
        var layout = format.layout
        var out = [UInt8](repeating: 0, count: try packedSize(format, rows: rows, cols: cols))
        let len = out.count
        try w.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBytes { dst in
                try check(tern_quantize(nil, &layout, src.baseAddress, Int64(rows), Int64(cols), nil,
                                        dst.baseAddress, len, nil))
            }
        }
        return out
    }
}

/// A packed ternary weight matrix (rows = outputs, cols = inputs). Immutable, thread-safe.
public final class Matrix {
    let handle: OpaquePointer
    public let rows: Int
    public let cols: Int

    public init(weights w: [Float], rows: Int, cols: Int, format: Format) throws {
        guard w.count >= rows * cols else {
            throw TernError(status: 2, message: "w has \(w.count) values, need \(rows * cols)")
        }
        var layout = format.layout
        var out: OpaquePointer?
        try w.withUnsafeBufferPointer { src in
            try check(tern_matrix_from_f32(nil, &layout, src.baseAddress, Int64(rows), Int64(cols),
                                           nil, nil, &out))
        }
        handle = out!
        self.rows = rows
        self.cols = cols
    }

    deinit { tern_matrix_destroy(handle) }

    /// `y[t][r] = Σ_k W[r][k]·x[t][k]` for `tokens` rows of `x`.
    public func gemm(_ x: [Float], tokens: Int) throws -> [Float] {
        guard tokens > 0, x.count >= tokens * cols else {
            throw TernError(status: 2, message: "x has \(x.count) values, need \(tokens * cols)")
        }
        var y = [Float](repeating: 0, count: tokens * rows)
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeMutableBufferPointer { yp in
                try check(tern_gemm(nil, handle, xp.baseAddress, Int64(tokens), 0, yp.baseAddress, 0, nil))
            }
        }
        return y
    }
}
