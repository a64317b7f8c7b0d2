package holding

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/internal/clock"
)

// A reader follows an image across chunk files while it is written: it
// gets every byte written, waits (an event, no polling) when it has read
// all there is, and sees the end only after Finish, even once the chunks
// were renamed by Commit. Its waits after the first byte are counted.
func TestGrowingReaderFollowsTheWriter(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir, Chunksize: 1 << 20})
	payload := make([]byte, 3<<20+777)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	h := header(payload)
	w := create(t, p, 4<<20, h)
	clk := clock.NewFake(time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC))
	g := Follow(w, clk)
	changes := 0
	g.OnChange(func() { changes++ })
	r := g.NewReader()
	defer r.Close()
	waiting := make(chan struct{}, 1)
	r.waiting = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}

	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 1)
	read := func(n int) {
		b := make([]byte, n)
		k, err := io.ReadFull(r, b)
		got <- result{b[:k], err}
	}
	// Nothing written: the reader waits (not counted: before the first byte).
	go read(1000)
	<-waiting
	clk.Advance(time.Second)
	g.Write(payload[:1000])
	if res := <-got; res.err != nil || !bytes.Equal(res.b, payload[:1000]) {
		t.Fatalf("first read: %v", res.err)
	}
	// The reader catches up and waits for the rest, which comes in pieces
	// across the chunk boundaries; the wait costs 3 s of drive time.
	rest := payload[1000:]
	go read(len(rest))
	<-waiting
	clk.Advance(3 * time.Second)
	for len(rest) > 0 {
		n := min(len(rest), 300<<10)
		if _, err := g.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if res := <-got; res.err != nil || !bytes.Equal(res.b, payload[1000:]) {
		t.Fatalf("rest: %v", res.err)
	}
	if written, rate := g.Progress(); written != int64(len(payload)) || rate != float64(len(payload))/4 {
		t.Errorf("progress %d bytes at %g/s", written, rate)
	}
	// All read, but the dump is not finished: no EOF yet.
	select {
	case <-waiting:
	default:
	}
	go read(1)
	<-waiting
	if g.Final() != nil {
		t.Fatal("final header before Finish")
	}
	path, err := w.Prepare(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	g.Finish(*h)
	if res := <-got; res.err != io.ErrUnexpectedEOF && res.err != io.EOF {
		t.Fatalf("after Finish: %v", res.err)
	}
	if f := g.Final(); f == nil || f.SHA256 != h.SHA256 {
		t.Errorf("final header %+v", f)
	}
	if w := r.Waited(); w != 3*time.Second {
		t.Errorf("waited %v, want 3s (the wait before the first byte is not counted)", w)
	}
	if changes < 3 {
		t.Errorf("%d change notifications", changes)
	}
	// A second reader, started after the commit renamed the chunks, reads
	// the whole image without waiting.
	r2 := g.NewReader()
	all, err := io.ReadAll(r2)
	r2.Close()
	if err != nil || !bytes.Equal(all, payload) {
		t.Fatalf("reader after the commit: %d bytes, %v", len(all), err)
	}
	if r2.Waited() != 0 {
		t.Errorf("a complete image made the reader wait %v", r2.Waited())
	}
	if _, err := Verify(path, []string{dir}); err != nil {
		t.Fatal(err)
	}
}

// A dump that fails gives its error to the reader, also to one that was
// waiting; Close ends a waiting Read.
func TestGrowingReaderFailAndClose(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir})
	payload := bytes.Repeat([]byte("z"), 10000)
	h := header(payload)
	w := create(t, p, 64<<10, h)
	g := Follow(w, nil)
	r := g.NewReader()
	waiting := make(chan struct{}, 1)
	r.waiting = func() { waiting <- struct{}{} }
	g.Write(payload[:5000])
	b := make([]byte, 8000)
	if n, err := r.Read(b); n != 5000 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	errc := make(chan error, 1)
	go func() { _, err := r.Read(b); errc <- err }()
	<-waiting
	cause := errors.New("agent killed")
	w.Abort()
	g.Fail(cause)
	if err := <-errc; !errors.Is(err, cause) {
		t.Fatalf("read after Fail: %v", err)
	}
	g.Finish(*h) // too late: the image stays failed
	if g.Final() != nil || !errors.Is(g.Err(), cause) {
		t.Errorf("final %v err %v", g.Final(), g.Err())
	}
	r.Close()

	w2 := create(t, p, 64<<10, h)
	g2 := Follow(w2, nil)
	r2 := g2.NewReader()
	r2.waiting = func() { waiting <- struct{}{} }
	go func() { _, err := r2.Read(b); errc <- err }()
	<-waiting
	r2.Close()
	if err := <-errc; !errors.Is(err, ErrReaderClosed) {
		t.Fatalf("read ended by Close: %v", err)
	}
	w2.Abort()
}
