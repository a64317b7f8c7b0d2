package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/taper/fakest"
)

// tapir verify reads every image of a volume back: whole images (also the
// parts on other volumes) against the catalog's SHA-256 and their tar
// streams to the end; a flipped byte on the volume is reported per image.
func TestVerify(t *testing.T) {
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: filepath.Join(s.dir, "src", "big"), Dumptype: "raw"})
	randomFiles(t, filepath.Join(s.dir, "src", "big"), 6, 1<<20)
	tt := s.cfg.Tapetypes["small"]
	tt.Length = 5 << 20 // the 6 MiB image spans two volumes
	s.cfg.Tapetypes["small"] = tt
	s.cfg.Runtapes = 3
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	res, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 0 || len(res.Images) < 1 {
		t.Fatalf("verify of a good volume: %+v", res.Images)
	}
	spanned := false
	for _, im := range res.Images {
		if im.Parts > 1 && strings.Contains(im.Detail, "all 2 parts") {
			spanned = true
		}
	}
	if !spanned {
		t.Errorf("no image was verified across its parts: %+v", res.Images)
	}
	// Flip a byte in the middle of the first image on the volume.
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot1", "00001.*"))
	b, _ := os.ReadFile(files[0])
	b[len(b)/2] ^= 1
	os.WriteFile(files[0], b, 0o640)
	res, err = Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 1 || res.Images[0].OK || !strings.Contains(res.Images[0].Detail, "SHA-256 mismatch") {
		t.Errorf("verify after a flipped byte: %+v", res.Images)
	}
	if _, err := Verify(context.Background(), s.cfg, "test-999", Deps{}); err == nil {
		t.Error("verify of an unknown volume succeeded")
	}
}

// singleDriveSite is a site whose changer is the single drive of a FUSE
// fake st drive (skipped without /dev/fuse) with cartridges of capacity
// bytes; the run waits for a cartridge until the test's operator acts.
func singleDriveSite(t *testing.T, capacity int64, cartridges ...string) (*site, *fakest.Drive) {
	t.Helper()
	drive := fakest.Mount(t, fakest.Options{Capacity: capacity, Cartridges: cartridges})
	s := newSite(t, "")
	s.cfg.Changer = config.Changer{Type: "single", Device: drive.Path(fakest.NST0), Tapetype: "small",
		Wait: config.Duration(24 * time.Hour), Poll: config.Duration(100 * time.Millisecond), Remind: config.Duration(time.Hour)}
	tt := s.cfg.Tapetypes["small"]
	tt.Length = config.Size(capacity)
	s.cfg.Tapetypes["small"] = tt
	return s, drive
}

// traceMotion checks a drive trace for a read in one forward pass: no
// backward spacing, MTSEEK targets that never decrease; it returns the
// number of rewinds.
func traceMotion(t *testing.T, trace []string) (rewinds int) {
	t.Helper()
	last := int64(-1)
	for _, e := range trace {
		op, arg, _ := strings.Cut(e, " ")
		switch op {
		case "MTREW":
			rewinds++
			last = -1 // a rewind starts over (counted by the caller)
		case "MTBSF", "MTBSR":
			t.Errorf("backward motion %q: %q", e, trace)
		case "MTSEEK":
			arg, _, _ = strings.Cut(arg, " ")
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil {
				t.Fatalf("trace entry %q: %v", e, err)
			}
			if n < last {
				t.Errorf("MTSEEK %d after MTSEEK %d: backward: %q", n, last, trace)
			}
			last = n
		}
	}
	return rewinds
}

// tapir verify reads a volume of three images on a tape drive in one
// forward pass (issue 14): one rewind when it is loaded, every image and
// header reached by locating or spacing forward, never back.
func TestVerifyOnePassOnTape(t *testing.T) {
	s, drive := singleDriveSite(t, 64<<20, "TAPE01")
	more := filepath.Join(s.dir, "src", "more")
	randomFiles(t, more, 3, 200<<10)
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: more, Dumptype: "default"})
	if rep, out, err := s.night(t, Deps{}); err != nil || len(rep.Volumes) != 1 {
		t.Fatalf("night: %v\n%s", err, out)
	}
	// What one load of the volume costs the drive (the changer reads the
	// label, rewinding around it): the verify loads it once.
	vols, err := VolumeSource(s.cfg, Deps{}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	drive.ResetTrace()
	_, release, err := vols.Open(t.Context(), "test-001", nil)
	if err != nil {
		t.Fatal(err)
	}
	release()
	load := traceMotion(t, drive.Trace())
	if load == 0 {
		t.Fatalf("loading the volume did not rewind it: %q", drive.Trace())
	}

	drive.ResetTrace()
	var asked []string
	res, err := Verify(t.Context(), s.cfg, "test-001", Deps{Log: testLogger(t), Ask: func(msg string) { asked = append(asked, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 0 || len(res.Images) != 3 {
		t.Fatalf("verify: %+v", res.Images)
	}
	for _, im := range res.Images {
		if !im.OK || !strings.Contains(im.Detail, "SHA-256 matches") {
			t.Errorf("file %d: %+v", im.FileNo, im)
		}
	}
	trace := drive.Trace()
	t.Logf("trace: %q", trace)
	if n := traceMotion(t, trace); n != load {
		t.Errorf("%d rewinds, want %d (one load of the volume): %q", n, load, trace)
	}
	// Once the reads start (the first positioning), nothing rewinds.
	moved := false
	for _, e := range trace {
		moved = moved || strings.HasPrefix(e, "MTSEEK ") || strings.HasPrefix(e, "MTFSF ")
		if moved && strings.HasPrefix(e, "MTREW ") {
			t.Errorf("a rewind after the reads began: %q", trace)
			break
		}
	}
	if len(asked) != 1 || asked[0] != "The following tapes are needed: test-001" {
		t.Errorf("asked %q", asked)
	}
}

// tapeOperator plays the person at the terminal of a single drive: it
// swaps in the cartridge of each volume asked for (Ask), and keeps what
// it was told. stop waits for it to finish.
type tapeOperator struct {
	t      *testing.T
	drive  *fakest.Drive
	carts  map[string]string // volume label: cartridge
	msgs   chan string
	mu     sync.Mutex
	asked  []string
	done   chan struct{}
	insert *regexp.Regexp
}

func newTapeOperator(t *testing.T, drive *fakest.Drive, carts map[string]string) *tapeOperator {
	o := &tapeOperator{t: t, drive: drive, carts: carts, msgs: make(chan string, 64), done: make(chan struct{}),
		insert: regexp.MustCompile(`insert volume (\S+) into`)}
	go o.run()
	return o
}

// ask is the Deps.Ask of the verify: it never blocks the verify.
func (o *tapeOperator) ask(msg string) {
	o.mu.Lock()
	o.asked = append(o.asked, msg)
	o.mu.Unlock()
	o.msgs <- msg
}

func (o *tapeOperator) run() {
	defer close(o.done)
	for msg := range o.msgs {
		m := o.insert.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		cart, ok := o.carts[m[1]]
		if !ok {
			o.t.Errorf("asked for volume %s, which the test does not have: %q", m[1], msg)
			continue
		}
		if name, _ := o.drive.Loaded(); name != "" {
			if err := o.drive.Eject(); err != nil {
				o.t.Error(err)
			}
			if _, err := o.drive.Remove(); err != nil {
				o.t.Error(err)
			}
		}
		if err := o.drive.Insert(cart); err != nil {
			o.t.Error(err)
		}
	}
}

// stop ends the operator and returns what it was told.
func (o *tapeOperator) stop() []string {
	close(o.msgs)
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.asked
}

// An image spanning two cartridges verifies with a single drive: tapir
// verify says which tapes it needs, asks for each cartridge that is not
// in the drive and waits while the person swaps them, reading each
// volume in one forward pass (issue 14).
func TestVerifySpanningSingleDrive(t *testing.T) {
	s, drive := singleDriveSite(t, 4<<20, "TAPE01", "TAPE02")
	s.cfg.Runtapes = 2
	random := filepath.Join(s.dir, "random")
	randomFiles(t, random, 4, 1<<20) // does not compress: with the rest, more than one 4 MiB volume
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: random, Dumptype: "default"})

	// The night fills TAPE01 and asks for another cartridge.
	var logs syncBuffer
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		if !logs.waitFor(t, func(log string) bool { return strings.Contains(log, "operator action needed") }) {
			return
		}
		if err := drive.Eject(); err != nil {
			t.Error(err)
		}
		if _, err := drive.Remove(); err != nil {
			t.Error(err)
		}
		if err := drive.Insert("TAPE02"); err != nil {
			t.Error(err)
		}
	}()
	rep, out, err := s.night(t, Deps{Log: slogTo(&logs)})
	if err != nil {
		t.Fatalf("night: %v\n%s\n%s", err, out, logs.String())
	}
	<-swapped
	if len(rep.Volumes) != 2 || rep.Volumes[0].Label != "test-001" || rep.Volumes[1].Label != "test-002" || !strings.Contains(out, "spans 2 volumes") {
		t.Fatalf("night volumes %+v\n%s", rep.Volumes, out)
	}
	carts := map[string]string{"test-001": "TAPE01", "test-002": "TAPE02"}

	// test-001's last image spans out onto test-002, and test-002's
	// first image spans in from test-001: both need test-001 first. The
	// drive holds test-002 after the night.
	for _, label := range []string{"test-001", "test-002"} {
		t.Run(label, func(t *testing.T) {
			op := newTapeOperator(t, drive, carts)
			drive.ResetTrace()
			res, err := Verify(t.Context(), s.cfg, label, Deps{Log: testLogger(t), Ask: op.ask})
			asked := op.stop()
			if err != nil {
				t.Fatalf("verify %s: %v (asked %q)", label, err, asked)
			}
			spanned := false
			for _, im := range res.Images {
				if !im.OK {
					t.Errorf("file %d: %+v", im.FileNo, im)
				}
				if im.Parts > 1 && strings.Contains(im.Detail, "all 2 parts") {
					spanned = true
				}
			}
			if res.Bad() != 0 || len(res.Images) == 0 || !spanned {
				t.Errorf("verify %s: %+v", label, res.Images)
			}
			if len(asked) == 0 || asked[0] != "The following tapes are needed: test-001 test-002" {
				t.Errorf("asked %q", asked)
			}
			insert := 0
			for _, m := range asked {
				if strings.Contains(m, "insert volume test-00") {
					insert++
				}
			}
			if insert < 1 || !strings.Contains(strings.Join(asked, "\n"), "insert volume test-002") {
				t.Errorf("not asked for the cartridges: %q", asked)
			}
			t.Logf("asked %q\ntrace %q", asked, drive.Trace())
			traceMotion(t, drive.Trace())
		})
	}
	// Ctrl-C while verify waits for a cartridge ends it with an error,
	// not with verdicts on the images. The drive holds test-002 now.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ask := func(msg string) {
		if strings.Contains(msg, "insert volume test-001") {
			cancel()
		}
	}
	res, err := Verify(ctx, s.cfg, "test-001", Deps{Log: testLogger(t), Ask: ask})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("verify cancelled while waiting for test-001: %+v, %v", res, err)
	}
}
