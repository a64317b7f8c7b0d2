package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/tapir-backup/tapir/bench/gen"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/fakest"
)

const blocksize = 256 << 10

func main() {
	work := flag.String("work", "", "an empty directory (the image, the vtapes, the mount point)")
	size := flag.String("size", "1GiB", "payload size of the holding image")
	runs := flag.Int("runs", 3, "runs of each")
	rate := flag.Int64("rate", 400e6, "streaming speed of the FUSE drive in bytes/s (an LTO-9 drive: 400e6); fuse-fast is the same drive without a speed")
	flag.Parse()
	if err := run(*work, *size, *runs, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "tapebench:", err)
		os.Exit(1)
	}
}

func run(work, sizeStr string, runs int, rate int64) error {
	if work == "" {
		return errors.New("-work is required")
	}
	size, err := gen.ParseSize(sizeStr)
	if err != nil {
		return err
	}
	img, err := makeImage(filepath.Join(work, "holding"), size)
	if err != nil {
		return err
	}
	// Warm the page cache: both sides read the image from memory.
	if f, err := os.Open(img); err == nil {
		io.Copy(io.Discard, f)
		f.Close()
	}
	targets := []struct {
		name  string
		tapir func() (time.Duration, error)
		dd    func() (time.Duration, error)
	}{}

	vt := filepath.Join(work, "vtapes")
	vtTapir := func() (time.Duration, error) {
		os.RemoveAll(vt)
		if err := os.MkdirAll(vt, 0o755); err != nil { // the disk changer never creates it
			return 0, err
		}
		ch, err := taper.NewDiskChanger(vt, 1, size*2+(64<<20), blocksize, nil)
		if err != nil {
			return 0, err
		}
		return scribe(img, ch)
	}
	vtDD := func() (time.Duration, error) {
		os.RemoveAll(vt)
		os.MkdirAll(vt, 0o755)
		return dd(img, filepath.Join(vt, "dd.out"), "conv=fsync")
	}
	targets = append(targets, struct {
		name  string
		tapir func() (time.Duration, error)
		dd    func() (time.Duration, error)
	}{"vtape", vtTapir, vtDD})

	// fuse-tape: the fake drive streaming at a real drive's speed (the
	// check); fuse-fast: the same drive swallowing records as fast as the
	// CPUs let it, in this process (informational: CPU-bound).
	for _, fd := range []struct {
		name string
		rate int64
	}{{"fuse-tape", rate}, {"fuse-fast", 0}} {
		mnt := filepath.Join(work, "mnt-"+fd.name)
		os.MkdirAll(mnt, 0o755)
		drive := fakest.New(fakest.Options{Capacity: size * 4, Discard: true, Rate: fd.rate})
		if err := drive.Mount(mnt); err != nil {
			fmt.Fprintf(os.Stderr, "tapebench: no FUSE tape (%v): measuring the vtape only\n", err)
			break
		}
		defer drive.Unmount()
		dev := drive.Path(fakest.NST0)
		fuseTapir := func() (time.Duration, error) {
			tp, err := taper.OpenTape(dev)
			if err != nil {
				return 0, err
			}
			ch := &oneTape{t: tp}
			d, err := scribe(img, ch)
			tp.Close()
			return d, err
		}
		fuseDD := func() (time.Duration, error) {
			tp, err := taper.OpenTape(dev)
			if err != nil {
				return 0, err
			}
			tp.Rewind()
			tp.Close()
			return dd(img, dev, "")
		}
		targets = append(targets, struct {
			name  string
			tapir func() (time.Duration, error)
			dd    func() (time.Duration, error)
		}{fd.name, fuseTapir, fuseDD})
	}

	mib := float64(size) / (1 << 20)
	result := ""
	for _, tg := range targets {
		var ts, ds []float64
		for i := 1; i <= runs; i++ {
			d, err := tg.dd()
			if err != nil {
				return fmt.Errorf("%s: dd: %w", tg.name, err)
			}
			t, err := tg.tapir()
			if err != nil {
				return fmt.Errorf("%s: tapir: %w", tg.name, err)
			}
			ds, ts = append(ds, d.Seconds()), append(ts, t.Seconds())
			fmt.Printf("   %-9s run %d  dd %7.3f s  tapir %7.3f s\n", tg.name, i, d.Seconds(), t.Seconds())
		}
		dm, tm := median(ds), median(ts)
		result += fmt.Sprintf(" %s_dd_s=%.3f %s_tapir_s=%.3f %s_tapir_mibs=%.1f %s_ratio=%.2f", tg.name, dm, tg.name, tm, tg.name, mib/tm, tg.name, dm/tm)
	}
	fmt.Printf("tapebench: size=%d%s\n", size, result)
	return nil
}

// oneTape is a changer of one tape drive that holds one volume.
type oneTape struct{ t *taper.Tape }

func (o *oneTape) Properties() taper.Properties {
	return taper.Properties{Kind: "single", Drives: 1, Where: "the drive " + o.t.Path()}
}
func (o *oneTape) Slots(context.Context) (int, error)                  { return 1, nil }
func (o *oneTape) Load(context.Context, int) (taper.Device, error)     { return o.t, o.t.Rewind() }
func (o *oneTape) Inventory(context.Context) ([]taper.SlotInfo, error) { return nil, nil }
func (o *oneTape) Scan(context.Context) ([]taper.SlotInfo, error)      { return nil, nil }
func (o *oneTape) Eject(context.Context) error                         { return nil }
func (o *oneTape) Labelled(context.Context, *taper.Label) error        { return nil }
func (o *oneTape) Where(int) string                                    { return "the drive " + o.t.Path() }
func (o *oneTape) Close() error                                        { return nil }
func (o *oneTape) WaitFor(context.Context, string, func(*taper.Label, error) bool, func(string)) (taper.Device, *taper.Label, error) {
	return nil, nil, fmt.Errorf("tapebench: wait for a volume: %w", taper.ErrNotSupported)
}
func (o *oneTape) Erase(context.Context, int, string, string) (int, error) {
	return 0, fmt.Errorf("tapebench: erase: %w", taper.ErrNotSupported)
}
func (o *oneTape) Drive(context.Context) (taper.DriveInfo, error) {
	return taper.DriveInfo{}, fmt.Errorf("tapebench: drive status: %w", taper.ErrNotSupported)
}

// source hands the scribe the changer's slot 1, freshly labelled.
type source struct{ ch taper.Changer }

func (s source) Next(context.Context) (*taper.Volume, error) {
	dev, err := s.ch.Load(context.Background(), 1)
	if err != nil {
		return nil, err
	}
	l := taper.Label{Datestamp: "20260101010101", Label: "BENCH-001", Org: "bench", Blocksize: blocksize, Created: time.Unix(1767229261, 0)}
	if err := taper.WriteLabel(dev, l); err != nil {
		return nil, err
	}
	return &taper.Volume{Label: l.Label, Slot: 1, Dev: dev, Blocksize: blocksize}, nil
}

// scribe tapes the holding image and returns the time it took, filemark
// (and, on a vtape, its fsync) included.
func scribe(path string, ch taper.Changer) (time.Duration, error) {
	im, err := holding.OpenImage(path, nil)
	if err != nil {
		return 0, err
	}
	defer im.Close()
	s := taper.NewScribe(source{ch}, nil)
	start := time.Now()
	res, err := s.WriteImage(context.Background(), *im.Header, im.Reader(), im.Header.Name())
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res.SHA256 != im.Header.SHA256 {
		return 0, fmt.Errorf("the scribe read SHA-256 %s, the image has %s", res.SHA256, im.Header.SHA256)
	}
	if cur := s.Current(); cur != nil {
		cur.Dev.Close()
	}
	return d, nil
}

func dd(in, out, conv string) (time.Duration, error) {
	args := []string{"if=" + in, "of=" + out, "bs=256k", "status=none"}
	if conv != "" {
		args = append(args, conv)
	}
	start := time.Now()
	b, err := exec.Command("dd", args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, b)
	}
	return time.Since(start), nil
}

// makeImage writes a holding image of size payload bytes (half random,
// half text, in 1 MiB pieces) and returns its path.
func makeImage(dir string, size int64) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil { // the holding disk: tapir never creates it
		return "", err
	}
	pool, err := holding.NewPool([]holding.Disk{{Path: dir, Chunksize: 1 << 40}}, holding.PoolOptions{})
	if err != nil {
		return "", err
	}
	sp, ok := pool.TryReserve(size+(1<<20), holding.Full)
	if !ok {
		return "", fmt.Errorf("no room for %d bytes in %s", size, dir)
	}
	h := &image.Header{Datestamp: "20260101010101", Host: "bench", Path: "/data", Level: 0, Part: 1, Parts: 1, Comp: image.CompNone,
		OriginalSize: size, PayloadSize: size, FrameSize: 1 << 20, Frames: 1, Files: 1}
	w, err := holding.Create(context.Background(), sp, h.Datestamp, h.Name())
	if err != nil {
		return "", err
	}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	sum := sha256.New()
	for off, i := int64(0), 0; off < size; off, i = off+int64(len(buf)), i+1 {
		n := min(int64(len(buf)), size-off)
		for j := range buf[:n] {
			if i%2 == 0 {
				buf[j] = byte(r.IntN(256))
			} else {
				buf[j] = "tapir bench log line 0123456789\n"[j%32]
			}
		}
		sum.Write(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return "", err
		}
	}
	h.SHA256 = hex.EncodeToString(sum.Sum(nil))
	return w.Finish(h)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
