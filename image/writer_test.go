package image

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
)

// literalTypes counts the literals-section types (0 raw, 1 RLE, 2
// Huffman-compressed, 3 treeless) of the compressed blocks of the zstd
// frames in a payload (the seek table, a skippable frame, is skipped).
func literalTypes(t *testing.T, p []byte) [4]int {
	t.Helper()
	var n [4]int
	for len(p) > 0 {
		if len(p) < 8 {
			t.Fatalf("%d bytes left over after the frames", len(p))
		}
		magic := binary.LittleEndian.Uint32(p)
		if magic&0xFFFFFFF0 == 0x184D2A50 { // skippable
			p = p[8+int(binary.LittleEndian.Uint32(p[4:])):]
			continue
		}
		if magic != 0xFD2FB528 {
			t.Fatalf("not a zstd frame: magic %#x", magic)
		}
		fhd := p[4]
		single := fhd&0x20 != 0
		off := 5
		if !single {
			off++ // window descriptor
		}
		off += []int{0, 1, 2, 4}[fhd&3] // dictionary ID
		switch fcs := fhd >> 6; {
		case fcs == 0 && single:
			off++
		case fcs > 0:
			off += []int{0, 2, 4, 8}[fcs]
		}
		p = p[off:]
		for {
			h := uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16
			last, typ, size := h&1 != 0, (h>>1)&3, int(h>>3)
			p = p[3:]
			switch typ {
			case 0: // raw
				p = p[size:]
			case 1: // RLE
				p = p[1:]
			case 2:
				n[p[0]&3]++
				p = p[size:]
			default:
				t.Fatalf("reserved block type")
			}
			if last {
				break
			}
		}
		if fhd&4 != 0 {
			p = p[4:] // content checksum
		}
	}
	return n
}

// Level 1 stores the literals of its blocks as they are (the faster
// encoder); the levels above it still Huffman-code them. Both restore.
func TestLevel1LiteralsRaw(t *testing.T) {
	var text strings.Builder
	for i := 0; text.Len() < 3<<20; i++ {
		fmt.Fprintf(&text, "2026-12-03T17:%02d:%02d host%d sshd[%d]: Accepted publickey for user%d from 10.0.%d.%d port %d\n",
			i/60%60, i%60, i%7, 1000+i*37%9000, i%13, i%256, i*7%256, 40000+i%20000)
	}
	data := []byte(text.String())
	for _, lvl := range []int{1, 3} {
		out, _ := writePayload(t, WriterOptions{Comp: CompZstd, Level: lvl, Concurrency: 2}, data, 1<<20)
		n := literalTypes(t, out)
		if n[0]+n[1]+n[2]+n[3] == 0 {
			t.Fatalf("level %d: no compressed block in %d bytes of log text", lvl, len(out))
		}
		if huff := n[2] + n[3]; (lvl == 1) != (huff == 0) {
			t.Errorf("level %d: %d blocks with Huffman-coded literals of %v", lvl, huff, n)
		}
		rc, err := NewStreamReader(bytes.NewReader(out), CompZstd)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := io.ReadAll(rc); err != nil || !bytes.Equal(back, data) {
			t.Fatalf("level %d: read back %d bytes, %v", lvl, len(back), err)
		}
	}
}

// TestPayloadWriterResume: a payload continued from the checkpoint of
// any frame is byte for byte the payload written in one go, with the same
// SHA-256 and frame list, for every compression.
func TestPayloadWriterResume(t *testing.T) {
	in := bytes.Repeat([]byte("tapir resumes where it stopped, 0123456789\n"), 4000) // 172000 bytes
	for _, comp := range []Comp{CompZstd, CompGzip, CompNone} {
		type cp struct {
			f   Frame
			sum []byte
		}
		var cps []cp
		var whole bytes.Buffer
		pw, err := NewPayloadWriter(&whole, WriterOptions{Comp: comp, FrameSize: 16 << 10, Concurrency: 2,
			Checkpoint: func(f Frame, sum []byte) { cps = append(cps, cp{f, bytes.Clone(sum)}) }})
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(in)
		if err := pw.Close(); err != nil {
			t.Fatal(err)
		}
		want := pw.Sum()
		if len(cps) != len(want.Frames) {
			t.Fatalf("%s: %d checkpoints for %d frames", comp, len(cps), len(want.Frames))
		}
		for k := range cps {
			var frames []Frame
			for _, c := range cps[:k+1] {
				frames = append(frames, c.f)
			}
			end := cps[k].f.Offset + cps[k].f.Size
			var rest bytes.Buffer
			rw, err := NewPayloadWriter(&rest, WriterOptions{Comp: comp, FrameSize: 16 << 10, Concurrency: 2, Resume: &ResumePoint{Frames: frames, Sum: cps[k].sum}})
			if err != nil {
				t.Fatal(err)
			}
			if rw.TarOffset() != cps[k].f.TarOffset+cps[k].f.TarSize {
				t.Fatalf("%s: resumed at tar offset %d", comp, rw.TarOffset())
			}
			if _, err := rw.Write(in[rw.TarOffset():]); err != nil {
				t.Fatal(err)
			}
			if err := rw.Close(); err != nil {
				t.Fatal(err)
			}
			got := rw.Sum()
			if !bytes.Equal(append(bytes.Clone(whole.Bytes()[:end]), rest.Bytes()...), whole.Bytes()) || got.SHA256 != want.SHA256 || len(got.Frames) != len(want.Frames) || got.PayloadSize != want.PayloadSize {
				t.Fatalf("%s: resumed after frame %d: payload or sum differs", comp, k)
			}
		}
	}
	// A resume point whose frames do not follow each other is refused.
	if _, err := NewPayloadWriter(io.Discard, WriterOptions{FrameSize: 16 << 10, Resume: &ResumePoint{Frames: []Frame{{TarOffset: 0, TarSize: 16 << 10, Offset: 0, Size: 10}, {TarOffset: 1, TarSize: 16 << 10, Offset: 10, Size: 10}}}}); err == nil {
		t.Fatal("a resume point with a gap was accepted")
	}
}
