package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// randomTar is n bytes that compress a little: runs of text and of random
// bytes, so frames differ in stored size.
func randomTar(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		k := min(n-len(b), 1+rng.IntN(3000))
		if rng.IntN(2) == 0 {
			line := fmt.Sprintf("line %d of the log\n", rng.IntN(1000))
			b = append(b, strings.Repeat(line, k/len(line)+1)[:k]...)
		} else {
			for range k {
				b = append(b, byte(rng.Uint32()))
			}
		}
	}
	return b
}

// readRandomly reads r to its end (or first error) with reads of random
// sizes, returning what it got.
func readRandomly(rng *rand.Rand, r io.Reader) ([]byte, error) {
	var got []byte
	buf := make([]byte, 70000)
	for {
		n, err := r.Read(buf[:1+rng.IntN(len(buf))])
		got = append(got, buf[:n]...)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

func sequential(t *testing.T, payload []byte, comp Comp, frames []Frame) []byte {
	t.Helper()
	r, err := NewReaderAt(bytes.NewReader(payload), comp, frames, frames[0].TarOffset)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The parallel reader yields exactly the bytes of sequential decoding, for
// random images: sizes, frame sizes, compressions, workers and memory
// bounds (down to one frame in flight), read in random pieces.
func TestParallelReaderMatchesSequential(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 15))
		comp := []Comp{CompZstd, CompGzip, CompNone}[rng.IntN(3)]
		tar := randomTar(rng, rng.IntN(200000))
		frameSize := MinFrameSize + rng.IntN(20000)
		payload, frames := framesOf(t, comp, tar, frameSize)
		if len(frames) == 0 {
			continue
		}
		opt := ParallelOptions{Workers: rng.IntN(5), MaxMemory: int64(rng.IntN(4)) * int64(frameSize) * 2}
		t.Run(fmt.Sprintf("seed%d-%s-%dB-frames%d-workers%d-mem%d", seed, comp, len(tar), len(frames), opt.Workers, opt.MaxMemory), func(t *testing.T) {
			want := sequential(t, payload, comp, frames)
			if !bytes.Equal(want, tar) {
				t.Fatal("the sequential reader does not give back the tar stream")
			}
			// From the first frame, and from a later one as a restore
			// of part of an image would.
			for _, from := range []int{0, rng.IntN(len(frames))} {
				r, err := NewParallelReader(bytes.NewReader(payload), comp, frames[from:], opt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readRandomly(rng, r)
				r.Close()
				if err != nil {
					t.Fatalf("from frame %d: %v", from, err)
				}
				if !bytes.Equal(got, tar[frames[from].TarOffset:]) {
					t.Fatalf("from frame %d: %d bytes differ from the sequential decoder's %d", from, len(got), len(tar)-int(frames[from].TarOffset))
				}
			}
		})
	}
}

// A damaged frame fails the read with an error naming it, and nothing but
// the tar bytes before that frame is ever delivered: no wrong data.
func TestParallelReaderDamagedFrame(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 16))
		comp := []Comp{CompZstd, CompGzip}[rng.IntN(2)]
		tar := randomTar(rng, 20000+rng.IntN(200000))
		payload, frames := framesOf(t, comp, tar, MinFrameSize+rng.IntN(8000))
		if len(frames) < 2 {
			continue
		}
		bad := frames[rng.IntN(len(frames))]
		damaged := append([]byte(nil), payload...)
		damaged[bad.Offset+rng.Int64N(bad.Size)] ^= byte(1 + rng.IntN(255))
		opt := ParallelOptions{Workers: 1 + rng.IntN(4)}
		t.Run(fmt.Sprintf("seed%d-%s-frame%d-of-%d", seed, comp, bad.Index, len(frames)), func(t *testing.T) {
			r, err := NewParallelReader(bytes.NewReader(damaged), comp, frames, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := readRandomly(rng, r)
			if err == nil {
				t.Fatalf("a damaged frame %d read without error", bad.Index)
			}
			if want := fmt.Sprintf("frame %d ", bad.Index); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %q", err, want)
			}
			if int64(len(got)) > bad.TarOffset || !bytes.Equal(got, tar[:len(got)]) {
				t.Fatalf("%d bytes delivered before the error, the damaged frame starts at tar offset %d, or they differ from the tar stream", len(got), bad.TarOffset)
			}
			// The error sticks.
			if _, err2 := r.Read(make([]byte, 10)); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("a read after the error gave %v, want %v", err2, err)
			}
		})
	}
}

// A payload that ends early fails at the frame it cuts, naming it.
func TestParallelReaderTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	tar := randomTar(rng, 100000)
	payload, frames := framesOf(t, CompZstd, tar, 4096)
	cut := frames[len(frames)/2]
	r, err := NewParallelReader(bytes.NewReader(payload[:cut.Offset+cut.Size/2]), CompZstd, frames, ParallelOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("reading frame %d ", cut.Index)) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want an unexpected EOF reading frame %d", err, cut.Index)
	}
	if int64(len(got)) > cut.TarOffset || !bytes.Equal(got, tar[:len(got)]) {
		t.Fatalf("%d bytes delivered, the cut frame starts at %d, or they differ", len(got), cut.TarOffset)
	}
}

// Close in the middle of a stream stops the goroutines (it waits for them)
// and later reads fail.
func TestParallelReaderCloseEarly(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	tar := randomTar(rng, 300000)
	payload, frames := framesOf(t, CompZstd, tar, 2048)
	for _, n := range []int{0, 1, 5000} {
		r, err := NewParallelReader(bytes.NewReader(payload), CompZstd, frames, ParallelOptions{Workers: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if _, err := r.Read(make([]byte, 1)); err == nil {
			t.Fatal("read after Close succeeded")
		}
		r.Close()
	}
}

func TestParallelReaderRefusesBadLists(t *testing.T) {
	payload, frames := framesOf(t, CompZstd, decoderInput(5000), 1024)
	gap := append([]Frame(nil), frames...)
	gap = append(gap[:1], gap[2:]...)
	for _, tc := range []struct {
		frames []Frame
		want   string
	}{
		{nil, "empty frame list"},
		{gap, "not contiguous"},
	} {
		if _, err := NewParallelReader(bytes.NewReader(payload), CompZstd, tc.frames, ParallelOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}
