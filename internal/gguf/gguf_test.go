package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func encode(t testing.TB, f *File) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := f.WriteTo(&b)
	require.NoError(t, err)
	require.EqualValues(t, b.Len(), n, "WriteTo's count")
	return b.Bytes()
}

// everyType is a file with one metadata value of every GGUF type and
// tensors of both stored types, odd sizes included so padding matters.
func everyType() *File {
	return &File{
		Metadata: []KV{
			{"u8", uint8(200)}, {"i8", int8(-100)}, {"u16", uint16(60000)}, {"i16", int16(-30000)},
			{"u32", uint32(4e9)}, {"i32", int32(-2e9)}, {"u64", uint64(1) << 60}, {"i64", int64(-1) << 60},
			{"f32", float32(1.5)}, {"f64", math.Pi}, {"t", true}, {"f", false}, {"s", "héllo"}, {"empty", ""},
			{"a.u8", []uint8{1, 2, 3}}, {"a.i8", []int8{-1}}, {"a.u16", []uint16{7}}, {"a.i16", []int16{-7}},
			{"a.u32", []uint32{1, 2}}, {"a.i32", []int32{-1, 3}}, {"a.u64", []uint64{9}}, {"a.i64", []int64{-9}},
			{"a.f32", []float32{0.25, -2}}, {"a.f64", []float64{1e300}}, {"a.bool", []bool{true, false, true}},
			{"a.str", []string{"a", "", "<0x0A>", "\u2581time"}}, {"a.none", []int32{}},
		},
		Tensors: []Tensor{
			{Name: "vec", Shape: []uint64{3}, Type: F32, Data: []float32{1, -2, 3.25}},
			{Name: "mat", Shape: []uint64{3, 2}, Type: F16, Data: []float32{0.1, 0.2, 0.3, -0.4, 65504, 1e-7}},
			{Name: "cube", Shape: []uint64{1, 2, 2, 1}, Type: F32, Data: []float32{float32(math.Inf(-1)), 0, 5, 6}},
		},
	}
}

// TestRoundTrip writes a file and parses it back: metadata with types and
// order, tensor names, shapes and types as written, F32 data exact and F16
// data rounded to half precision.
func TestRoundTrip(t *testing.T) {
	f := everyType()
	got, err := Decode(encode(t, f))
	require.NoError(t, err)
	assert.Equal(t, f.Metadata, got.Metadata)
	require.Len(t, got.Tensors, len(f.Tensors))
	for i, want := range f.Tensors {
		g := got.Tensors[i]
		assert.Equal(t, want.Name, g.Name)
		assert.Equal(t, want.Shape, g.Shape, want.Name)
		assert.Equal(t, want.Type, g.Type, want.Name)
		for j, x := range want.Data {
			if want.Type == F16 {
				x = Float32(Float16(x))
			}
			assert.Equal(t, math.Float32bits(x), math.Float32bits(g.Data[j]), "%s[%d]", want.Name, j)
		}
	}
}

// TestLayout checks the bytes a reader in another language relies on: the
// header fields, the tensor data starting at a multiple of the alignment,
// each tensor at its offset, and the file ending on the alignment.
func TestLayout(t *testing.T) {
	for _, align := range []uint32{32, 64} { // the default, and general.alignment honoured
		f := &File{
			Metadata: []KV{{"general.alignment", align}},
			Tensors: []Tensor{
				{Name: "a", Shape: []uint64{3}, Type: F32, Data: []float32{1, 2, 3}},
				{Name: "b", Shape: []uint64{2}, Type: F16, Data: []float32{1, -2}},
			},
		}
		b := encode(t, f)
		le := binary.LittleEndian
		assert.Equal(t, "GGUF", string(b[:4]))
		assert.EqualValues(t, 3, le.Uint32(b[4:]), "version")
		assert.EqualValues(t, 2, le.Uint64(b[8:]), "tensor count")
		assert.EqualValues(t, 1, le.Uint64(b[16:]), "metadata count")
		// header + kv ("general.alignment" uint32) + infos: a (1 dim), b (1 dim)
		infoEnd := 24 + (8 + 17 + 4 + 4) + 2*(8+1+4+8+4+8)
		dataStart := (infoEnd + int(align) - 1) / int(align) * int(align)
		bOffset := le.Uint64(b[infoEnd-8:])
		assert.EqualValues(t, align, bOffset, "b starts at the first aligned offset after a's 12 bytes")
		assert.Equal(t, float32(3), math.Float32frombits(le.Uint32(b[dataStart+8:])), "a[2]")
		assert.Equal(t, uint16(0xc000), le.Uint16(b[dataStart+int(bOffset)+2:]), "b[1] = -2 in half precision")
		assert.Zero(t, len(b)%int(align), "the file ends on the alignment")
	}
}

// TestFloat16 converts known values, including the rounding cases.
func TestFloat16(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00},                      // one
		{-2, 0xc000},                     // sign and exponent
		{0.1, 0x2e66},                    // rounds down (0.0999755859375)
		{65504, 0x7bff},                  // largest finite half
		{65520, 0x7c00},                  // halfway above it rounds to +Inf
		{1e6, 0x7c00},                    // too large: +Inf
		{float32(math.Inf(-1)), 0xfc00},  // -Inf stays
		{float32(math.NaN()), 0x7e00},    // NaN stays NaN
		{6.103515625e-05, 0x0400},        // smallest normal
		{5.960464477539063e-08, 0x0001},  // smallest subnormal
		{2.9802322387695312e-08, 0x0000}, // half of it: tie to even (zero)
		{8.940696716308594e-08, 0x0002},  // 1.5 of it: tie to even (two)
		{1e-9, 0x0000},                   // underflow
		{float32(math.Copysign(0, -1)), 0x8000},
		{1 + 1.0/2048, 0x3c00}, // tie between 1 and the next half: to even (1)
		{1 + 3.0/2048, 0x3c02}, // tie between 0x3c01 and 0x3c02: to even
		{1.9997, 0x4000},       // rounds up and carries into the exponent
	} {
		assert.Equal(t, tc.want, Float16(tc.in), "Float16(%g)", tc.in)
	}
}

// TestFloat16Exhaustive: every half value converts to float32 and back to
// itself (NaNs to the canonical NaN).
func TestFloat16Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		x := Float32(uint16(h))
		got := Float16(x)
		if x != x {
			require.Equal(t, uint16(h)&0x8000|0x7e00, got, "NaN %#04x", h)
			continue
		}
		require.Equal(t, uint16(h), got, "%#04x (%g)", h, x)
	}
}

// TestWriteErrors: what a reader would trip over is refused with a message
// naming the key or tensor, and nothing is written.
func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    File
		want string
	}{
		// two entries with one key
		{"duplicate key", File{Metadata: []KV{{"k", uint32(1)}, {"k", uint32(2)}}}, `metadata key "k" appears twice`},
		// int has no fixed size in the format
		{"int value", File{Metadata: []KV{{"k", 1}}}, `metadata "k": value of Go type int has no GGUF type`},
		// nested slices are not supported
		{"nested array", File{Metadata: []KV{{"k", [][]int32{{1}}}}}, `metadata "k"`},
		// alignment must be a power of two uint32
		{"bad alignment", File{Metadata: []KV{{"general.alignment", uint32(24)}}}, "general.alignment 24"},
		// two tensors with one name
		{"duplicate tensor", File{Tensors: []Tensor{{Name: "t", Shape: []uint64{1}, Data: []float32{0}}, {Name: "t", Shape: []uint64{1}, Data: []float32{0}}}}, `tensor "t" appears twice`},
		// the data must match the shape
		{"short data", File{Tensors: []Tensor{{Name: "t", Shape: []uint64{2, 2}, Data: []float32{0}}}}, `tensor "t": shape [2 2] has 4 elements but Data has 1`},
		// quantised types are not written
		{"q8_0", File{Tensors: []Tensor{{Name: "t", Shape: []uint64{1}, Type: 8, Data: []float32{0}}}}, `tensor "t": tensor type ggml type 8 is not supported`},
		// ggml has at most four dimensions
		{"five dims", File{Tensors: []Tensor{{Name: "t", Shape: []uint64{1, 1, 1, 1, 1}, Data: []float32{0}}}}, `tensor "t": 5 dimensions`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			_, err := tc.f.WriteTo(&b)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Zero(t, b.Len(), "nothing written")
		})
	}
}

// TestDecodeErrors: malformed input gets an ErrFormat error that says what
// is wrong, never a panic.
func TestDecodeErrors(t *testing.T) {
	valid := encode(t, everyType())
	le := binary.LittleEndian
	patch := func(off int, v uint64, size int) []byte {
		b := bytes.Clone(valid)
		if size == 4 {
			le.PutUint32(b[off:], uint32(v))
		} else {
			le.PutUint64(b[off:], v)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		// not a GGUF file at all
		{"magic", []byte("GGML\x03\x00\x00\x00"), `magic "GGML"`},
		// version 2 had 32-bit counts; refused rather than misread
		{"version 2", patch(4, 2, 4), "version 2"},
		// a tensor count no file could hold: refused before allocating
		{"huge tensor count", patch(8, 1<<62, 8), "tensor count 4611686018427387904"},
		// a metadata count past the end
		{"huge metadata count", patch(16, 1<<40, 8), "metadata count 1099511627776"},
		// a key length past the end
		{"huge key length", patch(24, 1<<50, 8), "metadata key needs"},
		// cut inside the tensor data
		{"truncated data", valid[:len(valid)-40], "past the end of the data section"},
		// empty input
		{"empty", nil, "magic needs 4 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrFormat), "wraps ErrFormat: %v", err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Every proper prefix of a valid file is an error (and no panic).
	for n := range len(valid) {
		_, err := Decode(valid[:n])
		require.ErrorIs(t, err, ErrFormat, "prefix of %d bytes", n)
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to
// a file that decodes to the same bytes again.
func FuzzDecode(f *testing.F) {
	f.Add(encode(f, everyType()))
	small, err := NewLlama(LlamaConfig{Name: "fuzz", EmbeddingLength: 4, BlockCount: 1, FeedForwardLength: 4, HeadCount: 2, Words: []string{"ab"}})
	require.NoError(f, err)
	f.Add(encode(f, small))
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Decode(b)
		if err != nil {
			require.ErrorIs(t, err, ErrFormat)
			return
		}
		e1 := encode(t, g)
		g2, err := Decode(e1)
		require.NoError(t, err)
		require.Equal(t, e1, encode(t, g2))
	})
}
