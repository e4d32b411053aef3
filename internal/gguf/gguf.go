package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// Version is the GGUF version this package writes and reads.
const Version = 3

// DefaultAlignment is the alignment of tensor data when the metadata has
// no general.alignment.
const DefaultAlignment = 32

// maxDims is ggml's GGML_MAX_DIMS.
const maxDims = 4

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The metadata value types of GGUF v3.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

// TensorType is a ggml tensor type.
type TensorType uint32

// The ggml tensor types this package stores.
const (
	F32 TensorType = 0
	F16 TensorType = 1
)

// String returns ggml's name of the type.
func (t TensorType) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

func (t TensorType) size() (int, error) {
	switch t {
	case F32:
		return 4, nil
	case F16:
		return 2, nil
	}
	return 0, fmt.Errorf("tensor type %v is not supported (only F32 and F16)", t)
}

// KV is one metadata entry. Value is one of uint8, int8, uint16, int16,
// uint32, int32, uint64, int64, float32, float64, bool, string, or a slice
// of one of those (a GGUF array).
type KV struct {
	Key   string
	Value any
}

// Tensor is one tensor: its name, its dimensions in ggml order (Shape[0]
// is contiguous), the type it is stored as, and its elements, row-major in
// that order (len(Data) is the product of Shape).
type Tensor struct {
	Name  string
	Shape []uint64
	Type  TensorType
	Data  []float32
}

// Elements returns the number of elements Shape describes.
func (t *Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a whole GGUF file: metadata in order, then tensors in order.
type File struct {
	Metadata []KV
	Tensors  []Tensor
}

// Get returns the value of the metadata key and whether it is present.
func (f *File) Get(key string) (any, bool) {
	for _, kv := range f.Metadata {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Tensor returns the tensor of that name, or nil.
func (f *File) Tensor(name string) *Tensor {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i]
		}
	}
	return nil
}

// Alignment returns general.alignment, or DefaultAlignment when it is absent.
func (f *File) Alignment() (int, error) {
	v, ok := f.Get("general.alignment")
	if !ok {
		return DefaultAlignment, nil
	}
	a, ok := v.(uint32)
	if !ok || a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("gguf: general.alignment %v (%T) is not a power of two uint32", v, v)
	}
	return int(a), nil
}

// WriteTo writes f in GGUF v3. It checks what a reader would trip over:
// duplicate keys or tensor names, unsupported value or tensor types, and
// data lengths that disagree with shapes.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	align, err := f.Alignment()
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: bufio.NewWriterSize(w, 1<<20)}
	le := binary.LittleEndian
	put := func(v any) { _ = binary.Write(cw, le, v) } // cw keeps the first error

	keys := map[string]bool{}
	for _, kv := range f.Metadata {
		if keys[kv.Key] {
			return 0, fmt.Errorf("gguf: metadata key %q appears twice", kv.Key)
		}
		keys[kv.Key] = true
		if _, _, err := valueType(kv.Value); err != nil {
			return 0, fmt.Errorf("gguf: metadata %q: %w", kv.Key, err)
		}
	}
	offsets := make([]uint64, len(f.Tensors))
	var off uint64
	names := map[string]bool{}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if names[t.Name] {
			return 0, fmt.Errorf("gguf: tensor %q appears twice", t.Name)
		}
		names[t.Name] = true
		if len(t.Shape) == 0 || len(t.Shape) > maxDims {
			return 0, fmt.Errorf("gguf: tensor %q: %d dimensions (want 1 to %d)", t.Name, len(t.Shape), maxDims)
		}
		size, err := t.Type.size()
		if err != nil {
			return 0, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		if n := t.Elements(); n != uint64(len(t.Data)) {
			return 0, fmt.Errorf("gguf: tensor %q: shape %v has %d elements but Data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		offsets[i] = off
		off = pad(off+uint64(len(t.Data)*size), uint64(align))
	}

	cw.Write([]byte(Magic))
	put(uint32(Version))
	put(uint64(len(f.Tensors)))
	put(uint64(len(f.Metadata)))
	for _, kv := range f.Metadata {
		writeString(cw, kv.Key)
		writeValue(cw, kv.Value)
	}
	for i, t := range f.Tensors {
		writeString(cw, t.Name)
		put(uint32(len(t.Shape)))
		put(t.Shape)
		put(uint32(t.Type))
		put(offsets[i])
	}
	cw.zeros(pad(uint64(cw.n), uint64(align)) - uint64(cw.n))
	dataStart := uint64(cw.n)
	buf := make([]byte, 0, 1<<16)
	for i, t := range f.Tensors {
		cw.zeros(dataStart + offsets[i] - uint64(cw.n))
		for j := 0; j < len(t.Data); j += 1 << 14 {
			buf = buf[:0]
			for _, x := range t.Data[j:min(j+1<<14, len(t.Data))] {
				if t.Type == F16 {
					buf = le.AppendUint16(buf, Float16(x))
				} else {
					buf = le.AppendUint32(buf, math.Float32bits(x))
				}
			}
			cw.Write(buf)
		}
	}
	cw.zeros(dataStart + off - uint64(cw.n))
	if cw.err == nil {
		cw.err = cw.w.(*bufio.Writer).Flush()
	}
	if cw.err != nil {
		return cw.n, fmt.Errorf("gguf: write: %w", cw.err)
	}
	return cw.n, nil
}

func pad(n, align uint64) uint64 { return (n + align - 1) / align * align }

// countWriter counts bytes and keeps the first error, so the writer above
// can check once at the end.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countWriter) zeros(n uint64) {
	var z [64]byte
	for n > 0 {
		k := min(n, uint64(len(z)))
		c.Write(z[:k])
		n -= k
	}
}

func writeString(w io.Writer, s string) {
	_ = binary.Write(w, binary.LittleEndian, uint64(len(s)))
	_, _ = io.WriteString(w, s)
}

// valueType returns the GGUF type of v and, for an array, its element type.
func valueType(v any) (ValueType, ValueType, error) {
	switch v.(type) {
	case uint8:
		return TypeUint8, 0, nil
	case int8:
		return TypeInt8, 0, nil
	case uint16:
		return TypeUint16, 0, nil
	case int16:
		return TypeInt16, 0, nil
	case uint32:
		return TypeUint32, 0, nil
	case int32:
		return TypeInt32, 0, nil
	case uint64:
		return TypeUint64, 0, nil
	case int64:
		return TypeInt64, 0, nil
	case float32:
		return TypeFloat32, 0, nil
	case float64:
		return TypeFloat64, 0, nil
	case bool:
		return TypeBool, 0, nil
	case string:
		return TypeString, 0, nil
	case []uint8:
		return TypeArray, TypeUint8, nil
	case []int8:
		return TypeArray, TypeInt8, nil
	case []uint16:
		return TypeArray, TypeUint16, nil
	case []int16:
		return TypeArray, TypeInt16, nil
	case []uint32:
		return TypeArray, TypeUint32, nil
	case []int32:
		return TypeArray, TypeInt32, nil
	case []uint64:
		return TypeArray, TypeUint64, nil
	case []int64:
		return TypeArray, TypeInt64, nil
	case []float32:
		return TypeArray, TypeFloat32, nil
	case []float64:
		return TypeArray, TypeFloat64, nil
	case []bool:
		return TypeArray, TypeBool, nil
	case []string:
		return TypeArray, TypeString, nil
	}
	return 0, 0, fmt.Errorf("value of Go type %T has no GGUF type (use a fixed-size number, bool, string or a slice of one)", v)
}

func writeValue(w io.Writer, v any) {
	le := binary.LittleEndian
	t, elem, _ := valueType(v) // checked by WriteTo
	_ = binary.Write(w, le, uint32(t))
	switch x := v.(type) {
	case string:
		writeString(w, x)
	case bool:
		_ = binary.Write(w, le, x)
	case []string:
		_ = binary.Write(w, le, uint32(elem))
		_ = binary.Write(w, le, uint64(len(x)))
		for _, s := range x {
			writeString(w, s)
		}
	default:
		if t == TypeArray {
			_ = binary.Write(w, le, uint32(elem))
			_ = binary.Write(w, le, uint64(sliceLen(x)))
		}
		_ = binary.Write(w, le, x) // fixed-size numbers and bools, or slices of them
	}
}

func sliceLen(v any) int {
	switch x := v.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float32:
		return len(x)
	case []float64:
		return len(x)
	case []bool:
		return len(x)
	}
	return 0
}

// Float16 rounds x to the nearest IEEE 754 half-precision value (ties to
// even) and returns its bits. Values beyond the half range become
// infinities; NaN stays NaN.
func Float16(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15: // too large
		return sign | 0x7c00
	case exp-127 >= -14: // normal half
		e := uint32(exp-127+15) << 10
		m := mant >> 13
		h := e | m
		rest := mant & 0x1fff
		if rest > 0x1000 || rest == 0x1000 && h&1 == 1 {
			h++ // may carry into the exponent, which is right (up to Inf)
		}
		return sign | uint16(h)
	case exp-127 >= -25: // subnormal half: value = m * 2^-24
		m := mant | 0x800000 // implicit bit
		shift := uint32(-(exp - 127) - 14 + 13)
		h := m >> shift
		rest := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || rest == half && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	}
	return sign // underflows to zero
}

// Float32 returns the float32 value of half-precision bits h (exact).
func Float32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		v := float32(mant) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// ErrFormat is wrapped by every error Decode returns for malformed input.
var ErrFormat = errors.New("gguf: malformed file")
