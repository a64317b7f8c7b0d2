package recover

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// The restore stream as a fake index server sends it, on a net.Pipe: the
// receiver's checks, order and failures, without TLS, a catalog or a
// volume. The images are built here: a tar stream with "./" first (GNU
// tar's root entry, never indexed), cut into small frames.

type streamImage struct {
	info    wire.ImageInfo
	frames  []image.Frame
	payload []byte
	entries []wire.EntryInfo // Image 0; the caller renumbers
	files   map[string][]byte
	// An encrypted image (sealImage): the payload on the volume, and
	// its shape.
	cipher []byte
	layout crypt.Layout
}

// chunkData is the stored bytes of frame k.
func (im *streamImage) chunkData(k int) []byte {
	f := im.frames[k]
	return im.payload[f.Offset : f.Offset+f.Size]
}

// buildStreamImage writes files (name → content; a name ending in "/" is
// a directory) in order into an image of comp cut into frames of
// frameSize tar bytes.
func buildStreamImage(t testing.TB, comp image.Comp, frameSize int, names []string, files map[string][]byte) *streamImage {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	im := &streamImage{files: map[string][]byte{}}
	add := func(h *tar.Header, data []byte) {
		tw.Flush()
		off := int64(tb.Len())
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
		if h.Name == "./" {
			return
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if n := len(im.entries); n > 0 {
			im.entries[n-1].Span = off - im.entries[n-1].TarOffset
		}
		im.entries = append(im.entries, wire.EntryInfo{Path: name, Type: h.Typeflag, Size: h.Size, Mode: uint32(h.Mode), Mtime: h.ModTime.UnixNano(), TarOffset: off})
		if h.Typeflag == tar.TypeReg {
			im.files[name] = data
		}
	}
	add(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: testMtime, Format: tar.FormatGNU}, nil)
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			add(&tar.Header{Name: "./" + n, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: testMtime, Format: tar.FormatGNU}, nil)
			continue
		}
		d := files[n]
		add(&tar.Header{Name: "./" + n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(d)), ModTime: testMtime, Format: tar.FormatGNU}, d)
	}
	tw.Close()
	var pb bytes.Buffer
	pw, err := image.NewPayloadWriter(&pb, image.WriterOptions{Comp: comp, FrameSize: frameSize, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(tb.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := pw.Sum()
	im.frames, im.payload = sum.Frames, pb.Bytes()
	im.info = wire.ImageInfo{Datestamp: "20250607010000", Level: 0, Status: "good", Comp: string(comp), FrameSize: int64(frameSize),
		OrigSize: sum.OriginalSize, PayloadSize: sum.PayloadSize, Frames: len(sum.Frames), Entries: len(im.entries)}
	return im
}

// someFiles returns n files of pseudo-random sizes and contents (half of
// them compressible) under a few directories whose names start with
// prefix, names in tar order.
func someFiles(seed uint64, prefix string, n, maxSize int) ([]string, map[string][]byte) {
	r := rand.New(rand.NewPCG(seed, 1))
	files := map[string][]byte{}
	var names []string
	for i := 0; i < n; i++ {
		if i%7 == 0 {
			names = append(names, fmt.Sprintf("%s%02d/", prefix, i/7))
		}
		name := fmt.Sprintf("%s%02d/f%03d", prefix, i/7, i)
		b := make([]byte, r.IntN(maxSize+1))
		for k := range b {
			if i%2 == 0 {
				b[k] = byte(r.Uint32())
			} else {
				b[k] = "tapir restores\n"[k%15]
			}
		}
		files[name] = b
		names = append(names, name)
	}
	return names, files
}

// fakeServer is the index server's end of a pipe to a Client.
type fakeServer struct {
	c    *wire.Conn
	conn net.Conn
	err  error
	done chan struct{}
}

// pipeClient returns a Client talking to a fake server that answers one
// restore request with the plan of images, then runs stream (which
// writes the rest), then closes its end.
func pipeClient(t testing.TB, images []*streamImage, stream func(c *wire.Conn) error) (*Client, *fakeServer) {
	t.Helper()
	a, b := net.Pipe()
	cl := &Client{Addr: "fake", nc: a, c: wire.NewConn(a)}
	fs := &fakeServer{c: wire.NewConn(b), conn: b, done: make(chan struct{})}
	var infos []wire.ImageInfo
	var entries []wire.EntryInfo
	for i, im := range images {
		infos = append(infos, im.info)
		for _, e := range im.entries {
			e.Image = i
			entries = append(entries, e)
		}
	}
	go func() {
		defer close(fs.done)
		defer b.Close()
		if _, _, err := fs.c.ReadFrame(); err != nil {
			fs.err = err
			return
		}
		if err := fs.c.WriteMsg(wire.IndexReply{OK: true, Count: len(entries), Images: infos}); err != nil {
			fs.err = err
			return
		}
		if err := fs.c.WriteEntries(entries); err != nil {
			fs.err = err
			return
		}
		fs.err = stream(fs.c)
		fs.c.Flush()
	}()
	t.Cleanup(func() { a.Close(); <-fs.done })
	return cl, fs
}

func sendChunk(c *wire.Conn, img int, f image.Frame, data []byte) error {
	if err := c.WriteMsg(wire.RestoreMsg{Chunk: &wire.Chunk{Image: img, Frame: f.Index, TarOffset: f.TarOffset, TarSize: f.TarSize, Size: f.Size}}); err != nil {
		return err
	}
	_, err := (wire.DataWriter{C: c, Chunk: 1 << 10}).Write(data)
	return err
}

// sendAll sends every frame of every image, as the server does.
func sendAll(images []*streamImage) func(c *wire.Conn) error {
	return func(c *wire.Conn) error {
		for i, im := range images {
			if err := c.WriteMsg(wire.RestoreMsg{Image: &wire.ImageStart{Image: i, Where: fmt.Sprintf("volume T-%d file 1", i)}}); err != nil {
				return err
			}
			for k, f := range im.frames {
				if err := sendChunk(c, i, f, im.chunkData(k)); err != nil {
					return err
				}
			}
		}
		return c.WriteMsg(wire.RestoreMsg{End: &wire.RestoreEnd{}})
	}
}

// checkRestored fails the test for a file restored under dir whose
// content differs from the image's, and returns how many were restored.
func checkRestored(t testing.TB, dir string, images []*streamImage) int {
	t.Helper()
	n := 0
	for _, im := range images {
		for name, want := range im.files {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s restored with %d bytes that differ from its %d in the image", name, len(got), len(want))
			}
			n++
		}
	}
	return n
}

// TestReceiverRestoresManyFramesInOrder: frames decompressed several at
// once come back in order, across images of different compressions, and
// every file is restored as it is in the images.
func TestReceiverRestoresManyFramesInOrder(t *testing.T) {
	names, files := someFiles(1, "d", 120, 5000)
	zst := buildStreamImage(t, image.CompZstd, 512, names, files)
	names2, files2 := someFiles(2, "g", 40, 3000)
	gz := buildStreamImage(t, image.CompGzip, 1024, names2, files2)
	images := []*streamImage{zst, gz}
	cl, fs := pipeClient(t, images, sendAll(images))
	dir := t.TempDir()
	var progress []string
	res, err := cl.Restore(context.Background(), Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: dir, Progress: func(s string) { progress = append(progress, s) }})
	if err != nil {
		t.Fatalf("restore: %v (server: %v)", err, fs.err)
	}
	if len(res.Failed) > 0 || res.Restored != len(zst.entries)+len(gz.entries) {
		t.Fatalf("restored %d of %d, failed %q", res.Restored, len(zst.entries)+len(gz.entries), res.Failed)
	}
	if n := checkRestored(t, dir, images); n != len(files)+len(files2) {
		t.Errorf("%d files restored, the images hold %d", n, len(files)+len(files2))
	}
	if len(progress) != 2 || !strings.Contains(progress[1], "from volume T-1 file 1") {
		t.Errorf("progress %q", progress)
	}
}

// TestReceiverDamagedFrame: a flipped byte in one frame fails the entries
// from that frame on, with a sentence naming the frame and what to do;
// nothing wrong is restored, the entries before it are, and the next
// image is restored whole.
func TestReceiverDamagedFrame(t *testing.T) {
	names, files := someFiles(3, "d", 80, 4000)
	zst := buildStreamImage(t, image.CompZstd, 512, names, files)
	names2, files2 := someFiles(4, "n", 10, 1000)
	next := buildStreamImage(t, image.CompZstd, 512, names2, files2)
	bad := len(zst.frames) / 2
	images := []*streamImage{zst, next}
	stream := func(c *wire.Conn) error {
		for i, im := range images {
			for k, f := range im.frames {
				d := append([]byte(nil), im.chunkData(k)...)
				if i == 0 && k == bad {
					d[len(d)/2] ^= 0x20
				}
				if err := sendChunk(c, i, f, d); err != nil {
					return err
				}
			}
		}
		return c.WriteMsg(wire.RestoreMsg{End: &wire.RestoreEnd{}})
	}
	cl, _ := pipeClient(t, images, stream)
	dir := t.TempDir()
	res, err := cl.Restore(context.Background(), Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) == 0 || !strings.Contains(res.Failed[0], fmt.Sprintf("frame %d of the level 0 image 2025-06-07 01:00:00 is damaged", bad)) ||
		!strings.Contains(res.Failed[0], "restore these files from another image (setdate) or check the volume with `tapir verify`") {
		t.Fatalf("failed %q", res.Failed)
	}
	checkRestored(t, dir, images)
	for name := range next.files {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s of the image after the damaged one: %v", name, err)
		}
	}
	// Everything that ends before the damaged frame is there.
	for _, e := range zst.entries {
		if e.Type == tar.TypeReg && e.Span > 0 && e.TarOffset+e.Span <= zst.frames[bad].TarOffset {
			if _, err := os.Stat(filepath.Join(dir, e.Path)); err != nil {
				t.Errorf("%s, before the damaged frame: %v", e.Path, err)
			}
		}
	}
}

// TestReceiverRefusesImpossibleChunks: a chunk no frame of its image can
// be, a message naming an image outside the plan, or holding two kinds,
// ends the restore with a protocol error that says what was wrong, before
// its data is read.
func TestReceiverRefusesImpossibleChunks(t *testing.T) {
	names, files := someFiles(5, "d", 6, 2000)
	im := buildStreamImage(t, image.CompZstd, 4096, names, files)
	f := im.frames[0]
	for _, c := range []struct {
		name string
		msg  wire.RestoreMsg
		want string
	}{
		{"tar size over the frame size", wire.RestoreMsg{Chunk: &wire.Chunk{Image: 0, TarSize: 8192, Size: 100}}, "holding 8192 tar bytes at tar offset 0, in an image of 4096-byte frames"},
		{"stored size beyond any compression", wire.RestoreMsg{Chunk: &wire.Chunk{Image: 0, TarSize: 4096, Size: 1 << 30}}, "a chunk of 1073741824 stored bytes"},
		{"stored size a byte beyond any compression", wire.RestoreMsg{Chunk: &wire.Chunk{Image: 0, TarSize: 4096, Size: 4096 + 256 + 64<<10 + 1}}, "a chunk of 69889 stored bytes"},
		{"negative offset", wire.RestoreMsg{Chunk: &wire.Chunk{Image: 0, TarOffset: -512, TarSize: f.TarSize, Size: f.Size}}, "at tar offset -512"},
		{"image outside the plan", wire.RestoreMsg{Chunk: &wire.Chunk{Image: 3, TarSize: f.TarSize, Size: f.Size}}, "names image 3; the plan has 1"},
		{"image start outside the plan", wire.RestoreMsg{Image: &wire.ImageStart{Image: -1, Where: "x"}}, "names image -1; the plan has 1"},
		{"two kinds", wire.RestoreMsg{Image: &wire.ImageStart{Image: 0}, End: &wire.RestoreEnd{}}, "holds 2 of chunk, sealed, image, ask and end, not one"},
		{"no kind", wire.RestoreMsg{}, "holds 0 of chunk, sealed, image, ask and end, not one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, _ := pipeClient(t, []*streamImage{im}, func(w *wire.Conn) error { return w.WriteMsg(c.msg) })
			_, err := cl.Restore(context.Background(), Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: t.TempDir()})
			if err == nil || !errors.Is(err, wire.ErrProtocol) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want a protocol error containing %q", err, c.want)
			}
		})
	}
}

// TestReceiverInterrupted: ^C while the server is silent (a volume being
// loaded) ends the restore at once with the interrupt, and the receiving
// goroutine with it.
func TestReceiverInterrupted(t *testing.T) {
	names, files := someFiles(6, "d", 4, 100)
	im := buildStreamImage(t, image.CompZstd, 512, names, files)
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	cl, _ := pipeClient(t, []*streamImage{im}, func(c *wire.Conn) error {
		if err := c.WriteMsg(wire.RestoreMsg{Ask: &wire.VolumeAsk{Msg: "insert volume T-0 into /dev/nst0"}}); err != nil {
			return err
		}
		c.Flush()
		<-release
		return nil
	})
	defer close(release)
	asked := false
	res, err := cl.Restore(ctx, Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: t.TempDir(), Ask: func(s string) {
		asked = true
		cancel() // the person gives up
	}})
	if !asked || !errors.Is(err, context.Canceled) {
		t.Fatalf("asked %v, error %v", asked, err)
	}
	if res == nil || res.Restored != 0 {
		t.Fatalf("result %+v", res)
	}
}

// TestReceiverBounds: the read-ahead holds at most
// image.DefaultParallelMemory of frames, and a single file's restore (one
// frame) starts one decompressing goroutine.
func TestReceiverBounds(t *testing.T) {
	for _, c := range []struct {
		frameSize int64
		frames    int
	}{{1 << 20, 1000}, {64 << 20, 10}, {1 << 30, 3}, {0, 5}, {1 << 20, 1}} {
		a, b := net.Pipe()
		cl := &Client{nc: a, c: wire.NewConn(a)}
		r := cl.startReceiver(context.Background(), []wire.ImageInfo{{Comp: "zst", FrameSize: c.frameSize, Frames: c.frames}}, nil)
		window := int64(cap(r.free))
		bound := c.frameSize
		if bound == 0 {
			bound = image.MaxFrameSize
		}
		if window < 1 || (window > 1 && window*(bound+maxStored(bound)) > image.DefaultParallelMemory) {
			t.Errorf("frames of %d bytes: a window of %d", c.frameSize, window)
		}
		if r.workers < 1 || int64(r.workers) > window || r.workers > c.frames {
			t.Errorf("%d frames of %d bytes: %d workers for a window of %d", c.frames, c.frameSize, r.workers, window)
		}
		r.stop()
		a.Close()
		b.Close()
	}
}
