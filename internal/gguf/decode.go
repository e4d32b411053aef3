package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Decode parses a whole GGUF v3 file held in b. It is meant for outside
// input: every count and length is checked against the bytes left before
// anything is allocated, so a malformed file gets an error wrapping
// ErrFormat (with the byte offset) instead of a panic or a huge allocation.
// Tensors of types other than F32 and F16 are an error.
func Decode(b []byte) (*File, error) {
	d := &decoder{b: b}
	f, err := d.file()
	if err != nil {
		return nil, err
	}
	return f, nil
}

type decoder struct {
	b   []byte
	off int
}

func (d *decoder) fail(format string, a ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrFormat, d.off, fmt.Sprintf(format, a...))
}

func (d *decoder) need(n uint64, what string) error {
	if n > uint64(len(d.b)-d.off) {
		return d.fail("%s needs %d bytes, %d left", what, n, len(d.b)-d.off)
	}
	return nil
}

func (d *decoder) bytes(n uint64, what string) ([]byte, error) {
	if err := d.need(n, what); err != nil {
		return nil, err
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	p, err := d.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	p, err := d.bytes(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p), nil
}

func (d *decoder) str(what string) (string, error) {
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	p, err := d.bytes(n, what)
	return string(p), err
}

func (d *decoder) file() (*File, error) {
	magic, err := d.bytes(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("%w: magic %q is not %q", ErrFormat, magic, Magic)
	}
	v, err := d.u32("version")
	if err != nil {
		return nil, err
	}
	if v != Version {
		return nil, fmt.Errorf("%w: version %d (only %d is supported)", ErrFormat, v, Version)
	}
	nt, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nkv, err := d.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// Each entry takes at least 8+4 (KV) or 8+4+8+4+8 (tensor info) bytes.
	if err := d.need(nkv*12, fmt.Sprintf("%d metadata entries", nkv)); err != nil || nkv > math.MaxInt32 {
		return nil, d.fail("metadata count %d is more than the file can hold", nkv)
	}
	if err := d.need(nt*32, fmt.Sprintf("%d tensor infos", nt)); err != nil || nt > math.MaxInt32 {
		return nil, d.fail("tensor count %d is more than the file can hold", nt)
	}
	f := &File{Metadata: make([]KV, 0, nkv), Tensors: make([]Tensor, 0, nt)}
	keys := map[string]bool{}
	for range nkv {
		key, err := d.str("metadata key")
		if err != nil {
			return nil, err
		}
		if keys[key] {
			return nil, d.fail("metadata key %q appears twice", key)
		}
		keys[key] = true
		t, err := d.u32("type of " + key)
		if err != nil {
			return nil, err
		}
		val, err := d.value(ValueType(t), key, true)
		if err != nil {
			return nil, err
		}
		f.Metadata = append(f.Metadata, KV{Key: key, Value: val})
	}
	align, err := f.Alignment()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}

	type span struct{ off, size uint64 }
	spans := make([]span, 0, nt)
	names := map[string]bool{}
	for range nt {
		name, err := d.str("tensor name")
		if err != nil {
			return nil, err
		}
		if names[name] {
			return nil, d.fail("tensor %q appears twice", name)
		}
		names[name] = true
		nd, err := d.u32("dimension count of " + name)
		if err != nil {
			return nil, err
		}
		if nd == 0 || nd > maxDims {
			return nil, d.fail("tensor %q has %d dimensions (want 1 to %d)", name, nd, maxDims)
		}
		shape := make([]uint64, nd)
		elems := uint64(1)
		for i := range shape {
			if shape[i], err = d.u64("dimension of " + name); err != nil {
				return nil, err
			}
			if shape[i] == 0 || elems > math.MaxInt32/shape[i] {
				return nil, d.fail("tensor %q: shape %v is empty or too large", name, shape[:i+1])
			}
			elems *= shape[i]
		}
		tt, err := d.u32("type of " + name)
		if err != nil {
			return nil, err
		}
		size, err := TensorType(tt).size()
		if err != nil {
			return nil, d.fail("tensor %q: %v", name, err)
		}
		off, err := d.u64("offset of " + name)
		if err != nil {
			return nil, err
		}
		if off%uint64(align) != 0 {
			return nil, d.fail("tensor %q: offset %d is not a multiple of the alignment %d", name, off, align)
		}
		f.Tensors = append(f.Tensors, Tensor{Name: name, Shape: shape, Type: TensorType(tt)})
		spans = append(spans, span{off, elems * uint64(size)})
	}
	dataStart := pad(uint64(d.off), uint64(align))
	if dataStart > uint64(len(d.b)) {
		return nil, d.fail("no room for the padding before the tensor data")
	}
	data := d.b[dataStart:]
	for i := range f.Tensors {
		t := &f.Tensors[i]
		s := spans[i]
		// llama.cpp reads each tensor padded to the alignment, so the
		// padding after the last one must be there too.
		if s.off > uint64(len(data)) || pad(s.size, uint64(align)) > uint64(len(data))-s.off {
			return nil, fmt.Errorf("%w: tensor %q: data [%d, %d) and its padding past the end of the data section (%d bytes)",
				ErrFormat, t.Name, s.off, s.off+s.size, len(data))
		}
		raw := data[s.off : s.off+s.size]
		t.Data = make([]float32, t.Elements())
		for j := range t.Data {
			if t.Type == F16 {
				t.Data[j] = Float32(binary.LittleEndian.Uint16(raw[2*j:]))
			} else {
				t.Data[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			}
		}
	}
	return f, nil
}

// value decodes one value of type t; arrays only at the top level (GGUF
// allows nested arrays, but no model metadata uses them).
func (d *decoder) value(t ValueType, key string, top bool) (any, error) {
	le := binary.LittleEndian
	fixed := func(n uint64) ([]byte, error) { return d.bytes(n, "value of "+key) }
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		p, err := fixed(1)
		if err != nil {
			return nil, err
		}
		switch t {
		case TypeUint8:
			return p[0], nil
		case TypeInt8:
			return int8(p[0]), nil
		}
		if p[0] > 1 {
			return nil, d.fail("bool %q is %d (want 0 or 1)", key, p[0])
		}
		return p[0] == 1, nil
	case TypeUint16, TypeInt16:
		p, err := fixed(2)
		if err != nil {
			return nil, err
		}
		if t == TypeUint16 {
			return le.Uint16(p), nil
		}
		return int16(le.Uint16(p)), nil
	case TypeUint32, TypeInt32, TypeFloat32:
		p, err := fixed(4)
		if err != nil {
			return nil, err
		}
		u := le.Uint32(p)
		switch t {
		case TypeUint32:
			return u, nil
		case TypeInt32:
			return int32(u), nil
		}
		return math.Float32frombits(u), nil
	case TypeUint64, TypeInt64, TypeFloat64:
		p, err := fixed(8)
		if err != nil {
			return nil, err
		}
		u := le.Uint64(p)
		switch t {
		case TypeUint64:
			return u, nil
		case TypeInt64:
			return int64(u), nil
		}
		return math.Float64frombits(u), nil
	case TypeString:
		return d.str("value of " + key)
	case TypeArray:
		if !top {
			return nil, d.fail("%q: nested arrays are not supported", key)
		}
		et, err := d.u32("element type of " + key)
		if err != nil {
			return nil, err
		}
		n, err := d.u64("element count of " + key)
		if err != nil {
			return nil, err
		}
		minSize := map[ValueType]uint64{TypeUint8: 1, TypeInt8: 1, TypeBool: 1, TypeUint16: 2, TypeInt16: 2,
			TypeUint32: 4, TypeInt32: 4, TypeFloat32: 4, TypeUint64: 8, TypeInt64: 8, TypeFloat64: 8, TypeString: 8}[ValueType(et)]
		if minSize == 0 {
			return nil, d.fail("%q: array element type %d is not supported", key, et)
		}
		if n > math.MaxInt32 || d.need(n*minSize, fmt.Sprintf("%d elements of %q", n, key)) != nil {
			return nil, d.fail("%q: %d elements are more than the file can hold", key, n)
		}
		return d.array(ValueType(et), int(n), key)
	}
	return nil, d.fail("%q: value type %d is not a GGUF type", key, t)
}

func (d *decoder) array(et ValueType, n int, key string) (any, error) {
	var out any
	add := func(i int, v any) {
		switch et {
		case TypeUint8:
			out.([]uint8)[i] = v.(uint8)
		case TypeInt8:
			out.([]int8)[i] = v.(int8)
		case TypeBool:
			out.([]bool)[i] = v.(bool)
		case TypeUint16:
			out.([]uint16)[i] = v.(uint16)
		case TypeInt16:
			out.([]int16)[i] = v.(int16)
		case TypeUint32:
			out.([]uint32)[i] = v.(uint32)
		case TypeInt32:
			out.([]int32)[i] = v.(int32)
		case TypeFloat32:
			out.([]float32)[i] = v.(float32)
		case TypeUint64:
			out.([]uint64)[i] = v.(uint64)
		case TypeInt64:
			out.([]int64)[i] = v.(int64)
		case TypeFloat64:
			out.([]float64)[i] = v.(float64)
		case TypeString:
			out.([]string)[i] = v.(string)
		}
	}
	switch et {
	case TypeUint8:
		out = make([]uint8, n)
	case TypeInt8:
		out = make([]int8, n)
	case TypeBool:
		out = make([]bool, n)
	case TypeUint16:
		out = make([]uint16, n)
	case TypeInt16:
		out = make([]int16, n)
	case TypeUint32:
		out = make([]uint32, n)
	case TypeInt32:
		out = make([]int32, n)
	case TypeFloat32:
		out = make([]float32, n)
	case TypeUint64:
		out = make([]uint64, n)
	case TypeInt64:
		out = make([]int64, n)
	case TypeFloat64:
		out = make([]float64, n)
	case TypeString:
		out = make([]string, n)
	}
	for i := range n {
		v, err := d.value(et, key, false)
		if err != nil {
			return nil, err
		}
		add(i, v)
	}
	return out, nil
}
