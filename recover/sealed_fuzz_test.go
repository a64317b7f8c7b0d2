package recover

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// Encrypted images in the restore stream: the frames come sealed (the age
// chunks that hold them, a chunk shared with the frame before carried),
// and the shell opens them with its key. A hostile server may send
// anything: the shell never panics, never writes a byte that did not
// authenticate, and says what went wrong.

// sealImage encrypts the payload of im to recipient: its info says so,
// with the age header; im.cipher is the payload on the volume.
func sealImage(t testing.TB, im *streamImage, recipient string) {
	t.Helper()
	var ct bytes.Buffer
	cw, err := crypt.NewWriter(&ct, []string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	cw.Write(im.payload)
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := crypt.NewLayout(int64(len(cw.Header())), cw.Size())
	if err != nil {
		t.Fatal(err)
	}
	im.cipher, im.layout = ct.Bytes(), l
	im.info.Encryption, im.info.Recipients, im.info.CryptHeader = crypt.Name, crypt.Fingerprints([]string{recipient}), cw.Header()
	im.info.PayloadSize = cw.Size()
}

// sealedSender sends frames of sealed images as the index server does:
// the age chunks of each frame, the first one carried when the sealed
// frame before (of any image: the shell keeps one) ended with it.
type sealedSender struct {
	lastImg   int
	lastChunk int64
}

// send sends frame k of image i; mutate may change the message and the
// bytes (a lie, a flipped byte) before they go.
func (s *sealedSender) send(c *wire.Conn, images []*streamImage, i, k int, mutate func(m *wire.Sealed, ct []byte) []byte) error {
	im := images[i]
	f := im.frames[k]
	m := wire.Sealed{Chunk: wire.Chunk{Image: i, Frame: f.Index, TarOffset: f.TarOffset, TarSize: f.TarSize, Size: f.Size}, Offset: f.Offset}
	first, count, off, n, err := im.layout.Span(f.Offset, f.Size)
	if err != nil {
		return err
	}
	if s.lastImg == i && s.lastChunk == first {
		m.Carry = true
		skip := im.layout.ChunkCipher(first)
		off, n = off+skip, n-skip
	}
	m.Cipher = n
	ct := append([]byte(nil), im.cipher[off:off+n]...)
	if mutate != nil {
		ct = mutate(&m, ct)
	}
	s.lastImg, s.lastChunk = i, first+count-1
	if err := c.WriteMsg(wire.RestoreMsg{Sealed: &m}); err != nil {
		return err
	}
	_, err = (wire.DataWriter{C: c, Chunk: 4096}).Write(ct)
	return err
}

var (
	fuzzSealedOnce   sync.Once
	fuzzSealedImages []*streamImage
	fuzzSealedIDs    *crypt.Identities
)

// sealedFuzzImages: two encrypted images (zstd in 4 KiB frames, none in
// 8 KiB frames) of several age chunks each, and the key that opens them.
func sealedFuzzImages(t testing.TB) ([]*streamImage, *crypt.Identities) {
	fuzzSealedOnce.Do(func() {
		id, err := crypt.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		ids, err := crypt.ParseIdentities(crypt.IdentityFileText(id, time.Time{}))
		if err != nil {
			t.Fatal(err)
		}
		ids.File = "key.txt"
		n0, f0 := someFiles(21, "d", 40, 6000)
		n1, f1 := someFiles(22, "p", 30, 6000)
		fuzzSealedImages = []*streamImage{
			buildStreamImage(t, image.CompZstd, 4096, n0, f0),
			buildStreamImage(t, image.CompNone, 8192, n1, f1),
		}
		for _, im := range fuzzSealedImages {
			sealImage(t, im, id.Recipient().String())
		}
		fuzzSealedIDs = ids
	})
	return fuzzSealedImages, fuzzSealedIDs
}

// The sealed stream's fuzz program: two-byte ops (op, arg), the image
// arg&1 where an op needs one.
//
//	0 image start    1 the next frame, sealed    2 skip the next frame
//	3 the next frame with a ciphertext byte flipped (arg picks it)
//	4 image error    5 ask    6 the next frame under a sealed header
//	that lies (arg>>1 picks the field, 7: carries a chunk not sent)    7 end    8 the previous frame again
//	9 the next frame as a plain chunk (its plaintext)
//	10 a stray frame of type arg    11 the next frame cut short, then the
//	connection closes
const (
	szStart = iota
	szSealed
	szSkip
	szFlip
	szImageError
	szAsk
	szLie
	szEnd
	szAgain
	szPlain
	szStray
	szCut
	szOps
)

func playSealed(images []*streamImage, prog []byte, lies *bool) func(c *wire.Conn) error {
	return func(c *wire.Conn) error {
		cursor := make([]int, len(images))
		s := &sealedSender{lastImg: -1}
		for len(prog) >= 2 {
			op, arg := prog[0]%szOps, prog[1]
			prog = prog[2:]
			i := int(arg & 1)
			im := images[i]
			k := cursor[i]
			if op == szAgain {
				k--
			}
			frameOp := op == szSealed || op == szFlip || op == szLie || op == szAgain || op == szPlain || op == szCut
			if frameOp && (k < 0 || k >= len(im.frames)) {
				continue
			}
			if frameOp && op != szAgain {
				cursor[i]++
			}
			var err error
			switch op {
			case szStart:
				err = c.WriteMsg(wire.RestoreMsg{Image: &wire.ImageStart{Image: i, Where: "volume T-001 file 1"}})
			case szSealed, szAgain:
				err = s.send(c, images, i, k, nil)
			case szFlip:
				err = s.send(c, images, i, k, func(m *wire.Sealed, ct []byte) []byte {
					if len(ct) > 0 {
						ct[int(arg>>1)*97%len(ct)] ^= 1 << (arg % 8)
					}
					return ct
				})
			case szLie:
				*lies = true
				err = s.send(c, images, i, k, func(m *wire.Sealed, ct []byte) []byte {
					switch (arg >> 1) % 8 {
					case 0:
						m.Offset += crypt.ChunkSize
					case 1:
						m.Offset -= 7
					case 2:
						m.Carry = !m.Carry
					case 3:
						m.Cipher++
						ct = append(ct, 0)
					case 4:
						m.Size += 1000
					case 5:
						m.Image = 1 - i
					case 6:
						m.TarOffset += 512
					case 7: // carries a chunk the shell does not hold
						if !m.Carry {
							first, _, _, _, _ := im.layout.Span(m.Offset, m.Size)
							skip := min(im.layout.ChunkCipher(first), int64(len(ct)))
							m.Carry, m.Cipher, ct = true, m.Cipher-skip, ct[skip:]
						}
					}
					return ct
				})
			case szPlain:
				f := im.frames[k]
				if err = c.WriteMsg(wire.RestoreMsg{Chunk: &wire.Chunk{Image: i, Frame: f.Index, TarOffset: f.TarOffset, TarSize: f.TarSize, Size: f.Size}}); err == nil {
					_, err = (wire.DataWriter{C: c, Chunk: 4096}).Write(im.chunkData(k))
				}
			case szCut:
				err = s.send(c, images, i, k, func(m *wire.Sealed, ct []byte) []byte { return ct[:len(ct)/2] })
				if err == nil {
					return nil
				}
			case szSkip:
			case szImageError:
				err = c.WriteMsg(wire.RestoreMsg{Image: &wire.ImageStart{Image: i, Error: "volume T-001 is in no slot of the changer"}})
			case szAsk:
				err = c.WriteMsg(wire.RestoreMsg{Ask: &wire.VolumeAsk{Msg: "insert volume T-002 into /dev/nst0"}})
			case szEnd:
				err = c.WriteMsg(wire.RestoreMsg{End: &wire.RestoreEnd{}})
			case szStray:
				err = c.WriteFrame(arg, []byte(`{"sealed":{"image":0,"cipher":99999999999}}`), false)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
}

func sealedSeeds(images []*streamImage) [][]byte {
	all := func(img byte) [][2]byte {
		ops := [][2]byte{{szStart, img}}
		for range images[img].frames {
			ops = append(ops, [2]byte{szSealed, img})
		}
		return ops
	}
	whole := append(all(0), all(1)...)
	end := [2]byte{szEnd, 0}
	with := func(at int, op [2]byte) []byte {
		p := append([][2]byte(nil), whole...)
		p[at] = op
		return encodeStream(append(p, end)...)
	}
	return [][]byte{
		encodeStream(append(whole, end)...),
		with(1, [2]byte{szFlip, 0x40}), // frame 0: it alone sends the first chunk
		with(5, [2]byte{szSkip, 0}),
		with(5, [2]byte{szLie, 0}),
		with(5, [2]byte{szLie, 4}),
		with(5, [2]byte{szPlain, 0}),
		with(len(all(0))+3, [2]byte{szFlip, 0x13}),
		encodeStream(append(slices.Clone(whole[:8]), [2]byte{szCut, 0})...),
		encodeStream(append(slices.Clone(whole[:8]), [2]byte{szAgain, 0}, [2]byte{szSealed, 0}, end)...),
		encodeStream([2]byte{szStray, 'M'}, end),
		with(len(all(0))+1, [2]byte{szLie, 15}), // image 1's first frame carries image 0's chunk
	}
}

// FuzzSealedStream: whatever a server sends after the plan of two
// encrypted images, the shell's restore ends, writes nothing outside its
// target, says every failure in words, and restores no file with bytes
// other than the image's unless the server lied about where its bytes
// are: a changed byte of the ciphertext is always caught, and a plain
// chunk of an encrypted image is refused.
func FuzzSealedStream(f *testing.F) {
	images, ids := sealedFuzzImages(f)
	for _, s := range sealedSeeds(images) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		lies := false
		cl, _ := pipeClient(t, images, playSealed(images, prog, &lies))
		a := newArena(t, false)
		res, err := cl.Restore(context.Background(), Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: a.Target, Warn: func(string) {}, Identities: ids})
		cl.Close()
		if err != nil && err.Error() == "" {
			t.Fatal("an error without words")
		}
		if res != nil {
			for _, l := range res.Failed {
				if i := strings.Index(l, ": "); i <= 0 || len(strings.TrimSpace(l[i+2:])) == 0 {
					t.Fatalf("a failure without words: %q", l)
				}
			}
			if res.Restored > res.Entries {
				t.Fatalf("restored %d of %d entries", res.Restored, res.Entries)
			}
		}
		if !lies {
			checkRestored(t, a.Target, images)
		}
		a.Check(t, false)
	})
}

// TestSealedSeeds: the seeds do what they say: the whole stream restores
// every file of both images (each age chunk sent once); a flipped
// ciphertext byte fails the frame's files, naming the image and the frame;
// a plain chunk of an encrypted image and a sealed header that lies are
// protocol errors.
func TestSealedSeeds(t *testing.T) {
	images, ids := sealedFuzzImages(t)
	seeds := sealedSeeds(images)
	want := 0
	for _, im := range images {
		want += len(im.entries)
	}
	restore := func(s []byte) (*RestoreResult, error, string) {
		lies := false
		cl, _ := pipeClient(t, images, playSealed(images, s, &lies))
		dir := t.TempDir()
		res, err := cl.Restore(context.Background(), Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: dir, Identities: ids})
		return res, err, dir
	}
	res, err, dir := restore(seeds[0])
	if err != nil || res.Restored != want || len(res.Failed) > 0 {
		t.Fatalf("the whole stream: restored %d of %d, failed %q, %v", res.Restored, want, res.Failed, err)
	}
	if n := checkRestored(t, dir, images); n != len(images[0].files)+len(images[1].files) {
		t.Errorf("%d files restored right", n)
	}
	res, err, dir = restore(seeds[1])
	if err != nil || len(res.Failed) == 0 || !strings.Contains(fmt.Sprint(res.Failed), "of the level 0 image 2025-06-07 01:00:00 is damaged") || !strings.Contains(fmt.Sprint(res.Failed), "authentication") {
		t.Errorf("a flipped ciphertext byte: failed %q, %v", res.Failed, err)
	}
	checkRestored(t, dir, images)
	for _, c := range []struct {
		seed int
		want string
	}{{3, "are outside the"}, {4, "ciphertext bytes announced"}, {5, "an encrypted image, came as plain bytes"}, {10, "begins in age chunk 0, which the sealed frame before did not end with"}} {
		if _, err, _ := restore(seeds[c.seed]); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("seed %d: %v, want a protocol error saying %q", c.seed, err, c.want)
		}
	}
	// Without the key: refused before anything is written.
	cl, _ := pipeClient(t, images, playSealed(images, seeds[0], new(bool)))
	dir = t.TempDir()
	_, err = cl.Restore(context.Background(), Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: dir})
	if err == nil || !strings.Contains(err.Error(), "level 0 image 20250607010000 of h:/d is encrypted (age, recipients") {
		t.Errorf("no key: %v", err)
	}
}

// TestReceiverBoundsSealed: with an encrypted image in the plan, each
// message read ahead also holds its frame's ciphertext and plaintext, and
// the window still stays within image.DefaultParallelMemory.
func TestReceiverBoundsSealed(t *testing.T) {
	images, ids := sealedFuzzImages(t)
	key, err := crypt.Unwrap(images[0].info.CryptHeader, images[0].info.PayloadSize, ids.List)
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range []int64{1 << 20, 16 << 20, 0} {
		a, b := net.Pipe()
		cl := &Client{nc: a, c: wire.NewConn(a)}
		info := images[0].info
		info.FrameSize, info.Frames = fs, 100
		r := cl.startReceiver(context.Background(), []wire.ImageInfo{info}, []*crypt.Key{key})
		window := int64(cap(r.free))
		bound := fs
		if bound == 0 {
			bound = image.MaxFrameSize
		}
		// A message holds the frame's ciphertext, its plaintext (the
		// chunks opened) and its tar bytes.
		per := bound + 2*crypt.MaxCipher(maxStored(bound))
		if window < 1 || (window > 1 && window*per > image.DefaultParallelMemory) {
			t.Errorf("frames of %d bytes: a window of %d messages of up to %d bytes", fs, window, per)
		}
		r.stop()
		a.Close()
		b.Close()
	}
}
