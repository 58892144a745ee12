package tern

import (
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestVersion(t *testing.T) {
	v, s := Version()
	if v != HeaderVersion() {
		t.Fatalf("library version %#x != header TERN_VERSION_NUMBER %#x", v, HeaderVersion())
	}
	if s == "" {
		t.Fatal("empty version string")
	}
}

// ternaryWeights returns weights that are exactly {-s, 0, +s}, so quantization is lossless.
func ternaryWeights(rows, cols int, s float32, rng *rand.Rand) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.Intn(3)-1) * s
	}
	return w
}

// absmean applies BitNet b1.58's per-tensor rule (what tern quantizes with by default):
// scale = mean|w|, t = clamp(round_half_even(w/scale), -1, 1); it returns t*scale and scale.
func absmean(w []float32) ([]float32, float32) {
	var sum float64
	for _, v := range w {
		sum += math.Abs(float64(v))
	}
	scale := float32(sum / float64(len(w)))
	inv := 1 / scale
	out := make([]float32, len(w))
	for i, v := range w {
		q := math.Max(-1, math.Min(1, math.RoundToEven(float64(v*inv))))
		out[i] = float32(q) * (1 / inv)
	}
	return out, 1 / inv
}

func TestGemmAllFormats(t *testing.T) {
	ctx, err := NewContext(&ContextOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	rng := rand.New(rand.NewSource(1))
	rows, cols, tokens := 64, 256, 3
	w := ternaryWeights(rows, cols, 0.5, rng)
	wq, _ := absmean(w)
	x := make([]float32, tokens*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, f := range []Format{FormatI2S, FormatTL1, FormatTL2, FormatTQ10, FormatTQ20} {
		m, err := NewMatrixFromF32(ctx, f, w, rows, cols)
		if err != nil {
			t.Fatalf("format %d: %v", f, err)
		}
		y, err := m.Gemm(ctx, x, tokens)
		if err != nil {
			t.Fatalf("format %d: %v", f, err)
		}
		var num, den float64
		for tk := 0; tk < tokens; tk++ {
			for r := 0; r < rows; r++ {
				var ref float64
				for k := 0; k < cols; k++ {
					ref += float64(wq[r*cols+k]) * float64(x[tk*cols+k])
				}
				d := float64(y[tk*rows+r]) - ref
				num += d * d
				den += ref * ref
			}
		}
		if rel := math.Sqrt(num / den); rel > 0.02 {
			t.Fatalf("format %d: relative error %g", f, rel)
		}
		m.Close()
	}
}

func TestQuantize(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	w := ternaryWeights(8, 256, 1, rng)
	b, stats, err := Quantize(nil, FormatTQ20, w, 8, 256)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := PackedSize(FormatTQ20, 8, 256)
	if len(b) != n || n != 8*66 {
		t.Fatalf("packed %d bytes, PackedSize %d", len(b), n)
	}
	if _, scale := absmean(w); stats.Sparsity < 0.2 || stats.Sparsity > 0.5 || stats.ScaleMax != scale {
		t.Fatalf("unexpected stats %+v", stats)
	}
}

func TestErrorsCarryStatusAndMessage(t *testing.T) {
	w := make([]float32, 4*100)
	_, err := NewMatrixFromF32(nil, FormatI2S, w, 4, 100) // I2_S needs cols % 128 == 0
	var te *Error
	if !errors.As(err, &te) || te.Status != StatusInvalidArgument || !strings.Contains(te.Message, "multiple of 128") {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrUnsupported) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
	if !strings.Contains(err.Error(), "TERN_STATUS_INVALID_ARGUMENT") {
		t.Fatalf("Error() = %q", err.Error())
	}
	if _, err := PackedSize(Format(99), 1, 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("format 99: %v", err)
	}
	if _, err := NewContext(&ContextOptions{MaxISA: 99}); err == nil {
		t.Fatal("MaxISA 99 accepted")
	}
	if _, err := OpenGGUF(filepath.Join(t.TempDir(), "missing.gguf")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("missing file: %v", err)
	}
	// Messages stay with their goroutine's call even when many goroutines fail at once.
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(cols int) {
			defer wg.Done()
			_, err := NewMatrixFromF32(nil, FormatTQ10, make([]float32, cols), 1, cols)
			if err == nil || !strings.Contains(err.Error(), "256") {
				t.Errorf("cols %d: %v", cols, err)
			}
		}(100 + i)
	}
	wg.Wait()
}

func TestGGUFRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	rows, cols := 32, 512
	w := ternaryWeights(rows, cols, 0.25, rng)
	packed, _, err := Quantize(nil, FormatTQ10, w, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteTernaryGGUF(path, "bitnet", "blk.0.attn_q.weight", FormatTQ10, packed, rows, cols); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	g, err := OpenGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if a, err := g.String("general.architecture"); err != nil || a != "bitnet" {
		t.Fatalf("architecture %q, %v", a, err)
	}
	if _, err := g.Int("general.architecture"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Int on a string: %v", err)
	}
	ts, err := g.Tensors()
	if err != nil || len(ts) != 1 || ts[0].GGMLType != 34 || ts[0].TypeName != "TQ1_0" ||
		ts[0].Dims[0] != int64(cols) || ts[0].Dims[1] != int64(rows) || ts[0].Format != FormatTQ10 {
		t.Fatalf("tensors %+v, %v", ts, err)
	}
	m, err := NewMatrixFromGGUF(nil, g, "blk.0.attn_q.weight")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Rows() != rows || m.Cols() != cols {
		t.Fatalf("matrix %dx%d", m.Rows(), m.Cols())
	}
	if _, err := NewMatrixFromGGUF(nil, g, "nope"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("missing tensor: %v", err)
	}
}
