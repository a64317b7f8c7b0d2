package recover

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// The restore stream's fuzz input is a program of two-byte ops (op, arg)
// that a fake index server plays after the plan of two fixed images (zstd
// and gzip, 512-byte frames): each image has a cursor, its next frame.
//
//	0 image start    1 the next frame    2 skip the next frame
//	3 the next frame with one byte flipped (arg picks the byte)
//	4 image error    5 ask for a volume  6 the next frame under a chunk
//	header that lies (arg picks the field)    7 end
//	8 the previous frame again    9 a stray frame of type arg
//
// The image is arg&1 where an op needs one. The server closes the
// connection when the program ends.
const (
	fzStart = iota
	fzChunk
	fzSkip
	fzFlip
	fzImageError
	fzAsk
	fzLie
	fzEnd
	fzAgain
	fzStray
	fzOps
)

var (
	fuzzStreamOnce   sync.Once
	fuzzStreamImages []*streamImage
)

func streamFuzzImages(t testing.TB) []*streamImage {
	fuzzStreamOnce.Do(func() {
		n0, f0 := someFiles(11, "d", 12, 1500)
		n1, f1 := someFiles(12, "g", 5, 800)
		fuzzStreamImages = []*streamImage{
			buildStreamImage(t, image.CompZstd, 512, n0, f0),
			buildStreamImage(t, image.CompGzip, 512, n1, f1),
		}
	})
	return fuzzStreamImages
}

// playStream plays the program; lies reports whether it sent a chunk
// header that does not describe the bytes sent (then a file may be
// restored with other bytes than the image's: the server is trusted with
// which bytes are where, a damaged frame is not).
func playStream(images []*streamImage, prog []byte, lies *bool) func(c *wire.Conn) error {
	return func(c *wire.Conn) error {
		cursor := make([]int, len(images))
		for len(prog) >= 2 {
			op, arg := prog[0]%fzOps, prog[1]
			prog = prog[2:]
			i := int(arg & 1)
			im := images[i]
			k := cursor[i]
			var err error
			switch op {
			case fzStart:
				err = c.WriteMsg(wire.RestoreMsg{Image: &wire.ImageStart{Image: i, Where: "volume T-001 file 1"}})
			case fzChunk, fzFlip, fzLie, fzAgain:
				if op == fzAgain {
					k--
				}
				if k < 0 || k >= len(im.frames) {
					continue
				}
				if op != fzAgain {
					cursor[i]++
				}
				f, data := im.frames[k], append([]byte(nil), im.chunkData(k)...)
				ch := wire.Chunk{Image: i, Frame: f.Index, TarOffset: f.TarOffset, TarSize: f.TarSize, Size: f.Size}
				switch {
				case op == fzFlip:
					data[int(arg>>1)%len(data)] ^= 1 << (arg % 8)
				case op == fzLie:
					*lies = true
					switch (arg >> 1) % 5 {
					case 0:
						ch.TarOffset += 512
					case 1:
						ch.TarSize--
					case 2:
						ch.Size++
						data = append(data, 0)
					case 3:
						ch.Image = 1 - i
					case 4:
						ch.Image = len(images)
					}
				}
				if err = c.WriteMsg(wire.RestoreMsg{Chunk: &ch}); err == nil {
					_, err = (wire.DataWriter{C: c, Chunk: 100}).Write(data)
				}
			case fzSkip:
				cursor[i]++
			case fzImageError:
				err = c.WriteMsg(wire.RestoreMsg{Image: &wire.ImageStart{Image: i, Error: "volume T-001 is in no slot of the changer"}})
			case fzAsk:
				err = c.WriteMsg(wire.RestoreMsg{Ask: &wire.VolumeAsk{Msg: "insert volume T-002 into /dev/nst0"}})
			case fzEnd:
				err = c.WriteMsg(wire.RestoreMsg{End: &wire.RestoreEnd{}})
			case fzStray:
				err = c.WriteFrame(arg, []byte(`{"x":1}`), false)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// encodeStream builds a program from (op, arg) pairs.
func encodeStream(ops ...[2]byte) []byte {
	var b []byte
	for _, o := range ops {
		b = append(b, o[0], o[1])
	}
	return b
}

// streamSeeds: the whole stream in order, each image's frames after the
// other's, with a damaged frame, a dropped one, a repeated one, an image
// error, a volume asked for, lies, and an early end.
func streamSeeds(images []*streamImage) [][]byte {
	all := func(img byte, op byte) [][2]byte {
		var ops [][2]byte
		for range images[img].frames {
			ops = append(ops, [2]byte{op, img})
		}
		return ops
	}
	whole := append(append([][2]byte{{fzStart, 0}}, all(0, fzChunk)...), append([][2]byte{{fzStart, 1}}, all(1, fzChunk)...)...)
	flip := append([][2]byte(nil), whole...)
	flip[3] = [2]byte{fzFlip, 0x40}
	drop := append([][2]byte(nil), whole...)
	drop[4] = [2]byte{fzSkip, 0}
	again := append(append([][2]byte(nil), whole[:5]...), append([][2]byte{{fzAgain, 0}}, whole[5:]...)...)
	lie := append([][2]byte(nil), whole...)
	lie[2] = [2]byte{fzLie, 0}
	return [][]byte{
		encodeStream(append(whole, [2]byte{fzEnd, 0})...),
		encodeStream(append(flip, [2]byte{fzEnd, 0})...),
		encodeStream(append(drop, [2]byte{fzEnd, 0})...),
		encodeStream(append(again, [2]byte{fzEnd, 0})...),
		encodeStream(append(lie, [2]byte{fzEnd, 0})...),
		encodeStream(append([][2]byte{{fzImageError, 0}, {fzAsk, 0}, {fzStart, 1}}, append(all(1, fzChunk), [2]byte{fzEnd, 0})...)...),
		encodeStream(whole[:6]...),
		encodeStream([2]byte{fzStray, 'D'}, [2]byte{fzEnd, 0}),
	}
}

// FuzzRestoreStream: whatever a server sends after a plan, the shell's
// restore ends (the connection closing ends it at the latest), writes
// nothing outside its target, says every failure in words, and restores
// no file with bytes other than the image's unless the server lied about
// where its bytes are: a flipped byte in a frame is always caught.
func FuzzRestoreStream(f *testing.F) {
	images := streamFuzzImages(f)
	for _, s := range streamSeeds(images) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		lies := false
		cl, _ := pipeClient(t, images, playStream(images, prog, &lies))
		a := newArena(t, false)
		res, err := cl.Restore(context.Background(), Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: a.Target, Warn: func(string) {}})
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

// TestStreamSeeds: the fuzz seeds do what they say (the whole stream
// restores everything; a flipped byte is reported).
func TestStreamSeeds(t *testing.T) {
	images := streamFuzzImages(t)
	seeds := streamSeeds(images)
	want := 0
	for _, im := range images {
		want += len(im.entries)
	}
	for i, s := range seeds[:2] {
		lies := false
		cl, _ := pipeClient(t, images, playStream(images, s, &lies))
		res, err := cl.Restore(context.Background(), Query{Host: "h", DLE: "/d"}, []string{""}, RestoreOptions{To: t.TempDir()})
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		switch i {
		case 0:
			if res.Restored != want || len(res.Failed) > 0 {
				t.Errorf("the whole stream: restored %d of %d, failed %q", res.Restored, want, res.Failed)
			}
		case 1:
			if len(res.Failed) == 0 || !strings.Contains(fmt.Sprint(res.Failed), "frame 2 of the level 0 image 2025-06-07 01:00:00 is damaged") {
				t.Errorf("a flipped byte: failed %q", res.Failed)
			}
		}
	}
}
