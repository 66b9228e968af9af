package infer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ioInfo is a graph input or output as the model file declares it.
type ioInfo struct {
	name   string
	tensor bool    // a tensor (not a sequence, map, ...)
	elem   int32   // ONNX TensorProto.DataType: 1 float, 7 int64, ...
	dims   []int64 // -1 where the dimension is symbolic or unknown
}

// The ONNX TensorProto.DataType values jetinfer reads.
const (
	onnxFloat = 1
	onnxInt64 = 7
)

func (i ioInfo) String() string {
	if !i.tensor {
		return fmt.Sprintf("%s (not a tensor)", i.name)
	}
	return fmt.Sprintf("%s %s %v", i.name, onnxTypeName(i.elem), i.dims)
}

func onnxTypeName(t int32) string {
	switch t {
	case 1:
		return "float32"
	case 6:
		return "int32"
	case 7:
		return "int64"
	case 10:
		return "float16"
	case 11:
		return "float64"
	case 16:
		return "bfloat16"
	}
	return fmt.Sprintf("type %d", t)
}

// readGraphIO reads the inputs and outputs declared by an ONNX model
// (ModelProto.graph.input and .output) without loading it: it walks the
// protobuf, seeking over the weights. It reads only what ONNX Runtime would
// also report for a conventional export; LoadModel falls back to ONNX
// Runtime when this fails or finds something unusual.
func readGraphIO(rs io.ReadSeeker) (ins, outs []ioInfo, err error) {
	p := &pbStream{rs: rs, r: bufio.NewReaderSize(rs, 64<<10)}
	foundGraph := false
	for {
		field, wt, err := p.tag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if field == 7 && wt == 2 { // ModelProto.graph
			n, err := p.varint()
			if err != nil {
				return nil, nil, err
			}
			end := p.pos + int64(n)
			foundGraph = true
			for p.pos < end {
				f, wt, err := p.tag()
				if err != nil {
					return nil, nil, noEOF(err)
				}
				if (f == 11 || f == 12) && wt == 2 { // GraphProto.input, .output
					b, err := p.message(1 << 20)
					if err != nil {
						return nil, nil, err
					}
					vi, err := parseValueInfo(b)
					if err != nil {
						return nil, nil, err
					}
					if f == 11 {
						ins = append(ins, vi)
					} else {
						outs = append(outs, vi)
					}
					continue
				}
				if err := p.skip(wt); err != nil {
					return nil, nil, err
				}
			}
			if p.pos != end {
				return nil, nil, errors.New("graph field overruns its length")
			}
			continue
		}
		if err := p.skip(wt); err != nil {
			return nil, nil, err
		}
	}
	if !foundGraph {
		return nil, nil, errors.New("no graph")
	}
	return ins, outs, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// pbStream reads protobuf wire format from a file, seeking over large fields.
type pbStream struct {
	rs  io.ReadSeeker
	r   *bufio.Reader
	pos int64
}

func (p *pbStream) varint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		c, err := p.r.ReadByte()
		if err != nil {
			if shift > 0 {
				return 0, noEOF(err)
			}
			return 0, err
		}
		p.pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint overflows 64 bits")
}

func (p *pbStream) tag() (field uint64, wt int, err error) {
	v, err := p.varint()
	if err != nil {
		return 0, 0, err
	}
	if v>>3 == 0 {
		return 0, 0, errors.New("field number 0")
	}
	return v >> 3, int(v & 7), nil
}

// forward moves n bytes ahead, seeking when they are not buffered.
func (p *pbStream) forward(n uint64) error {
	if n > 1<<40 {
		return errors.New("field length out of range")
	}
	if n <= uint64(p.r.Buffered()) {
		p.r.Discard(int(n))
		p.pos += int64(n)
		return nil
	}
	p.pos += int64(n)
	if _, err := p.rs.Seek(p.pos, io.SeekStart); err != nil {
		return err
	}
	p.r.Reset(p.rs)
	return nil
}

// skip passes over the value of a field of wire type wt.
func (p *pbStream) skip(wt int) error {
	switch wt {
	case 0:
		_, err := p.varint()
		return noEOF(err)
	case 1:
		return p.forward(8)
	case 2:
		n, err := p.varint()
		if err != nil {
			return noEOF(err)
		}
		return p.forward(n)
	case 5:
		return p.forward(4)
	}
	return fmt.Errorf("unsupported wire type %d", wt)
}

// message reads a length-delimited field of at most max bytes.
func (p *pbStream) message(max uint64) ([]byte, error) {
	n, err := p.varint()
	if err != nil {
		return nil, noEOF(err)
	}
	if n > max {
		return nil, fmt.Errorf("field of %d bytes is larger than %d", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.r, b); err != nil {
		return nil, noEOF(err)
	}
	p.pos += int64(n)
	return b, nil
}

// pbField is one field of a protobuf message held in memory.
type pbField struct {
	num   uint64
	wt    int
	v     uint64 // varint and fixed values
	bytes []byte // length-delimited values
}

// pbFields calls fn for each field of the message b.
func pbFields(b []byte, fn func(f pbField) error) error {
	for len(b) > 0 {
		t, n := pbVarint(b)
		if n <= 0 {
			return errors.New("bad tag")
		}
		b = b[n:]
		f := pbField{num: t >> 3, wt: int(t & 7)}
		if f.num == 0 {
			return errors.New("field number 0")
		}
		switch f.wt {
		case 0:
			if f.v, n = pbVarint(b); n <= 0 {
				return errors.New("bad varint")
			}
			b = b[n:]
		case 1, 5:
			size := 8
			if f.wt == 5 {
				size = 4
			}
			if len(b) < size {
				return io.ErrUnexpectedEOF
			}
			b = b[size:]
		case 2:
			l, n := pbVarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errors.New("bad length")
			}
			f.bytes = b[n : n+int(l)]
			b = b[n+int(l):]
		default:
			return fmt.Errorf("unsupported wire type %d", f.wt)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// pbVarint decodes a varint at the start of b, returning its length (0 when
// b holds no complete varint).
func pbVarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// parseValueInfo reads an ONNX ValueInfoProto: name (1) and type (2), a
// TypeProto whose tensor_type (1) has elem_type (1) and shape (2), a
// TensorShapeProto of dims (1), each a dim_value (1) or dim_param (2).
func parseValueInfo(b []byte) (ioInfo, error) {
	var vi ioInfo
	err := pbFields(b, func(f pbField) error {
		switch {
		case f.num == 1 && f.wt == 2:
			vi.name = string(f.bytes)
		case f.num == 2 && f.wt == 2:
			return pbFields(f.bytes, func(f pbField) error {
				if f.num != 1 || f.wt != 2 {
					return nil
				}
				vi.tensor = true
				return pbFields(f.bytes, func(f pbField) error {
					switch {
					case f.num == 1 && f.wt == 0:
						vi.elem = int32(f.v)
					case f.num == 2 && f.wt == 2:
						return pbFields(f.bytes, func(f pbField) error {
							if f.num != 1 || f.wt != 2 {
								return nil
							}
							d := int64(-1)
							err := pbFields(f.bytes, func(f pbField) error {
								if f.num == 1 && f.wt == 0 && int64(f.v) > 0 {
									d = int64(f.v)
								}
								return nil
							})
							vi.dims = append(vi.dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	if err == nil && vi.name == "" {
		err = errors.New("graph input or output without a name")
	}
	return vi, err
}
