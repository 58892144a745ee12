// Package tern is a small Go binding of libtern, the ternary (BitNet b1.58) quantization,
// packing and GEMM library, through cgo and pkg-config (`pkg-config --cflags --libs tern`).
//
// Errors are *Error values carrying the C status and the library's message. The message is
// thread-local in C, so every call that may fail runs with the goroutine locked to its OS
// thread until the message has been read.
//
// Contexts, matrices and GGUF files are immutable after creation and safe for concurrent use;
// free them with Close (a finalizer does it otherwise).
package tern

/*
#cgo pkg-config: tern
#include <stdlib.h>
#include <tern.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Status is a tern_status value.
type Status int32

const (
	StatusOK              Status = 0
	StatusNullPointer     Status = 1
	StatusInvalidArgument Status = 2
	StatusMisaligned      Status = 3
	StatusBufferTooSmall  Status = 4
	StatusUnsupported     Status = 5
	StatusNoDevice        Status = 6
	StatusCudaError       Status = 7
	StatusOutOfMemory     Status = 8
	StatusPanic           Status = 9
	StatusInternal        Status = 10
)

// String is the C name of the status, e.g. "TERN_STATUS_INVALID_ARGUMENT".
func (s Status) String() string {
	return C.GoString(C.tern_status_name(C.int32_t(s)))
}

// Error is a failed tern call: its status and the library's message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "tern: " + e.Status.String()
	}
	return fmt.Sprintf("tern: %s: %s", e.Status, e.Message)
}

// Is makes errors.Is(err, ErrInvalidArgument) match any *Error with that status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && (t.Message == "" || t.Message == e.Message)
}

// Sentinels for errors.Is.
var (
	ErrNullPointer     = &Error{Status: StatusNullPointer}
	ErrInvalidArgument = &Error{Status: StatusInvalidArgument}
	ErrBufferTooSmall  = &Error{Status: StatusBufferTooSmall}
	ErrUnsupported     = &Error{Status: StatusUnsupported}
)

// call runs f on a locked OS thread and turns a failure into an *Error with the message that
// f left in the thread-local last error.
func call(f func() C.tern_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f()
	if st == 0 {
		return nil
	}
	msg := ""
	if p := C.tern_last_error_message(); p != nil {
		msg = C.GoString(p)
	}
	return &Error{Status: Status(st), Message: msg}
}

// Version returns the library's packed version (MAJOR<<16 | MINOR<<8 | PATCH) and its string.
func Version() (uint32, string) {
	return uint32(C.tern_version()), C.GoString(C.tern_version_string())
}

// HeaderVersion is TERN_VERSION_NUMBER from the tern.h this package was compiled against.
func HeaderVersion() uint32 {
	return uint32(C.TERN_VERSION_NUMBER)
}

// Format is a tern_format value.
type Format int32

const (
	FormatI2S  Format = 1
	FormatTL1  Format = 2
	FormatTL2  Format = 3
	FormatTQ10 Format = 4
	FormatTQ20 Format = 5
	FormatQ20  Format = 6
	FormatQ10  Format = 7
)

func layout(f Format) C.tern_layout {
	return C.tern_layout{struct_size: C.uint32_t(C.sizeof_tern_layout), format: C.int32_t(f)}
}

// Context holds the kernel choice and thread count. A nil *Context means the library's
// process-wide default context.
type Context struct{ p *C.tern_context }

// ContextOptions: MaxISA is a tern_isa value (0 = best), Threads 0 = all cores.
type ContextOptions struct {
	MaxISA  int32
	Threads int32
}

// NewContext creates a context (opts may be nil).
func NewContext(opts *ContextOptions) (*Context, error) {
	// The C initializer's default spin (a zero spin_us would make idle workers sleep at once).
	o := C.tern_context_options{
		struct_size: C.uint32_t(C.sizeof_tern_context_options),
		spin_us:     C.TERN_DEFAULT_SPIN_US,
	}
	if opts != nil {
		o.max_isa = C.int32_t(opts.MaxISA)
		o.n_threads = C.int32_t(opts.Threads)
	}
	var p *C.tern_context
	if err := call(func() C.tern_status { return C.tern_context_create(&o, &p) }); err != nil {
		return nil, err
	}
	c := &Context{p}
	runtime.SetFinalizer(c, (*Context).Close)
	return c, nil
}

func (c *Context) ptr() *C.tern_context {
	if c == nil {
		return nil
	}
	return c.p
}

// Close frees the context; matrices created with it stay valid.
func (c *Context) Close() {
	if c != nil && c.p != nil {
		C.tern_context_destroy(c.p)
		c.p = nil
		runtime.SetFinalizer(c, nil)
	}
}

// PackedSize is the byte size of a rows x cols matrix in format f.
func PackedSize(f Format, rows, cols int) (int, error) {
	l := layout(f)
	var n C.size_t
	err := call(func() C.tern_status { return C.tern_packed_size(&l, C.int64_t(rows), C.int64_t(cols), &n) })
	return int(n), err
}

// QuantStats mirrors tern_quant_stats.
type QuantStats struct {
	Sparsity, BitsPerWeight, CompressionVsF32, CompressionVsF16 float64
	ScaleMin, ScaleMax                                          float32
	RMSE                                                        float64
}

// Quantize ternarizes a row-major rows x cols matrix (BitNet absmean) and packs it in format f.
func Quantize(ctx *Context, f Format, w []float32, rows, cols int) ([]byte, QuantStats, error) {
	if rows <= 0 || cols <= 0 || len(w) < rows*cols {
		return nil, QuantStats{}, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("w has %d values, need rows*cols = %d*%d > 0", len(w), rows, cols)}
	}
	n, err := PackedSize(f, rows, cols)
	if err != nil {
		return nil, QuantStats{}, err
	}
	dst := make([]byte, n)
	l := layout(f)
	s := C.tern_quant_stats{struct_size: C.uint32_t(C.sizeof_tern_quant_stats)}
	err = call(func() C.tern_status {
		return C.tern_quantize(ctx.ptr(), &l, (*C.float)(unsafe.Pointer(&w[0])), C.int64_t(rows), C.int64_t(cols),
			nil, unsafe.Pointer(&dst[0]), C.size_t(n), &s)
	})
	if err != nil {
		return nil, QuantStats{}, err
	}
	return dst, QuantStats{float64(s.sparsity), float64(s.bits_per_weight), float64(s.compression_vs_f32),
		float64(s.compression_vs_f16), float32(s.scale_min), float32(s.scale_max), float64(s.rmse)}, nil
}

// Matrix is a packed ternary weight matrix (rows = outputs, cols = inputs).
type Matrix struct {
	p          *C.tern_matrix
	rows, cols int
}

func newMatrix(p *C.tern_matrix) *Matrix {
	info := C.tern_matrix_properties{struct_size: C.uint32_t(C.sizeof_tern_matrix_properties)}
	C.tern_matrix_info(p, &info)
	m := &Matrix{p, int(info.rows), int(info.cols)}
	runtime.SetFinalizer(m, (*Matrix).Close)
	return m
}

// NewMatrixFromF32 quantizes a row-major rows x cols matrix into format f.
func NewMatrixFromF32(ctx *Context, f Format, w []float32, rows, cols int) (*Matrix, error) {
	if rows <= 0 || cols <= 0 || len(w) < rows*cols {
		return nil, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("w has %d values, need rows*cols = %d*%d > 0", len(w), rows, cols)}
	}
	l := layout(f)
	var p *C.tern_matrix
	err := call(func() C.tern_status {
		return C.tern_matrix_from_f32(ctx.ptr(), &l, (*C.float)(unsafe.Pointer(&w[0])), C.int64_t(rows),
			C.int64_t(cols), nil, nil, &p)
	})
	if err != nil {
		return nil, err
	}
	return newMatrix(p), nil
}

// Rows and Cols of the matrix.
func (m *Matrix) Rows() int { return m.rows }
func (m *Matrix) Cols() int { return m.cols }

// Gemm computes y[t][r] = sum_k W[r][k] * x[t][k] for nTokens rows of x (BitNet int8
// activations); it returns nTokens rows of Rows() floats.
func (m *Matrix) Gemm(ctx *Context, x []float32, nTokens int) ([]float32, error) {
	if nTokens <= 0 || len(x) < nTokens*m.cols {
		return nil, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("x has %d values, need nTokens*cols = %d*%d > 0", len(x), nTokens, m.cols)}
	}
	y := make([]float32, nTokens*m.rows)
	err := call(func() C.tern_status {
		return C.tern_gemm(ctx.ptr(), m.p, (*C.float)(unsafe.Pointer(&x[0])), C.int64_t(nTokens), 0,
			(*C.float)(unsafe.Pointer(&y[0])), 0, nil)
	})
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	return y, nil
}

// Close frees the matrix.
func (m *Matrix) Close() {
	if m != nil && m.p != nil {
		C.tern_matrix_destroy(m.p)
		m.p = nil
		runtime.SetFinalizer(m, nil)
	}
}

// GGUF is an open, validated, memory-mapped GGUF file.
type GGUF struct{ p *C.tern_gguf }

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	Name     string
	GGMLType uint32
	TypeName string
	Dims     []int64 // ggml order: Dims[0] is the row length
	Bytes    uint64
	Format   Format // 0 when the tensor is not ternary
}

// OpenGGUF opens and validates a GGUF file.
func OpenGGUF(path string) (*GGUF, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var p *C.tern_gguf
	if err := call(func() C.tern_status { return C.tern_gguf_open(cp, &p) }); err != nil {
		return nil, err
	}
	g := &GGUF{p}
	runtime.SetFinalizer(g, (*GGUF).Close)
	return g, nil
}

// Close unmaps the file.
func (g *GGUF) Close() {
	if g != nil && g.p != nil {
		C.tern_gguf_close(g.p)
		g.p = nil
		runtime.SetFinalizer(g, nil)
	}
}

// Tensors lists the file's tensors in file order.
func (g *GGUF) Tensors() ([]TensorInfo, error) {
	var n C.size_t
	if err := call(func() C.tern_status { return C.tern_gguf_tensor_count(g.p, &n) }); err != nil {
		return nil, err
	}
	out := make([]TensorInfo, 0, int(n))
	for i := 0; i < int(n); i++ {
		t := C.tern_gguf_tensor{struct_size: C.uint32_t(C.sizeof_tern_gguf_tensor)}
		if err := call(func() C.tern_status { return C.tern_gguf_tensor_info(g.p, C.size_t(i), &t) }); err != nil {
			return nil, err
		}
		dims := make([]int64, int(t.n_dims))
		for d := range dims {
			dims[d] = int64(t.dims[d])
		}
		out = append(out, TensorInfo{C.GoStringN(t.name, C.int(t.name_len)), uint32(t.ggml_type),
			C.GoString(t.type_name), dims, uint64(t.nbytes), Format(t.format)})
	}
	runtime.KeepAlive(g)
	return out, nil
}

// String returns the string value of key.
func (g *GGUF) String(key string) (string, error) {
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var p *C.char
	var n C.size_t
	if err := call(func() C.tern_status { return C.tern_gguf_get_string(g.p, ck, &p, &n) }); err != nil {
		return "", err
	}
	s := C.GoStringN(p, C.int(n))
	runtime.KeepAlive(g)
	return s, nil
}

// Int returns the integer value of key.
func (g *GGUF) Int(key string) (int64, error) {
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var v C.int64_t
	err := call(func() C.tern_status { return C.tern_gguf_get_int(g.p, ck, &v) })
	return int64(v), err
}

// NewMatrixFromGGUF loads ternary tensor name (TQ1_0, TQ2_0, I2_S, TL1, TL2) as a matrix.
func NewMatrixFromGGUF(ctx *Context, g *GGUF, name string) (*Matrix, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var p *C.tern_matrix
	if err := call(func() C.tern_status { return C.tern_matrix_from_gguf(ctx.ptr(), g.p, cn, &p) }); err != nil {
		return nil, err
	}
	runtime.KeepAlive(g)
	return newMatrix(p), nil
}

// WriteTernaryGGUF writes a GGUF file holding one packed ternary matrix (plus
// general.architecture), e.g. to hand weights to a llama.cpp fork.
func WriteTernaryGGUF(path, arch, name string, f Format, packed []byte, rows, cols int) error {
	var w *C.tern_gguf_writer
	if err := call(func() C.tern_status { return C.tern_gguf_writer_create(nil, &w) }); err != nil {
		return err
	}
	defer C.tern_gguf_writer_destroy(w)
	ck, ca, cn, cp := C.CString("general.architecture"), C.CString(arch), C.CString(name), C.CString(path)
	defer func() {
		for _, s := range []*C.char{ck, ca, cn, cp} {
			C.free(unsafe.Pointer(s))
		}
	}()
	if err := call(func() C.tern_status { return C.tern_gguf_writer_add_string(w, ck, ca) }); err != nil {
		return err
	}
	if len(packed) == 0 {
		return &Error{Status: StatusInvalidArgument, Message: "packed is empty"}
	}
	l := layout(f)
	if err := call(func() C.tern_status {
		return C.tern_gguf_writer_add_ternary(w, cn, &l, unsafe.Pointer(&packed[0]), C.size_t(len(packed)),
			C.int64_t(rows), C.int64_t(cols))
	}); err != nil {
		return err
	}
	return call(func() C.tern_status { return C.tern_gguf_writer_write(w, cp) })
}
