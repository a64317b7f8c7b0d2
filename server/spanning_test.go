package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/taper/fakest"
)

// operator plays the person at a single drive: asked for a volume, it
// ejects what the drive holds and inserts the cartridge carrying that
// volume. It acts in its own goroutine, as a person would, and keeps
// every message it was given.
type operator struct {
	t      *testing.T
	drive  *fakest.Drive
	asked  chan string
	mu     sync.Mutex
	carts  map[string]string // volume label -> cartridge
	said   []string
	brings []string // the volumes inserted, in order
}

var insertVolume = regexp.MustCompile(`insert volume (\S+) into`)

func newOperator(t *testing.T, drive *fakest.Drive) *operator {
	o := &operator{t: t, drive: drive, asked: make(chan string, 256), carts: map[string]string{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range o.asked {
			if m := insertVolume.FindStringSubmatch(msg); m != nil {
				o.bring(m[1])
			}
		}
	}()
	t.Cleanup(func() { close(o.asked); <-done })
	return o
}

// ask is the Ask of a restore or verify.
func (o *operator) ask(msg string) {
	o.mu.Lock()
	o.said = append(o.said, msg)
	o.mu.Unlock()
	o.asked <- msg
}

// swap takes the cartridge out of the drive and inserts name.
func (o *operator) swap(name string) {
	if cur, loaded := o.drive.Loaded(); loaded && cur == name {
		return
	}
	o.drive.Eject()  // fails when already ejected or empty: nothing to do
	o.drive.Remove() // likewise
	if err := o.drive.Insert(name); err != nil {
		o.t.Error(err)
	}
}

func (o *operator) bring(label string) {
	o.mu.Lock()
	name, ok := o.carts[label]
	o.brings = append(o.brings, label)
	o.mu.Unlock()
	if !ok {
		o.t.Errorf("the operator was asked for volume %s, which is on no cartridge it knows", label)
		return
	}
	o.swap(name)
}

// take returns and forgets what the operator was told since the last take.
func (o *operator) take() (said, brought []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	said, brought = o.said, o.brings
	o.said, o.brings = nil, nil
	return said, brought
}

// The single-drive site end to end (issue 14): a night whose image spans
// two cartridges (the test plays the operator, who swaps them when the
// run asks); then verify of both volumes and restores of a file in part
// 1, a file in part 2 and of the whole DLE, each telling the volumes it
// needs in order and asking for each cartridge in turn.
func TestSingleDriveSpanningNight(t *testing.T) {
	s, drive := singleDriveSite(t, 4<<20, "TAPE01", "TAPE02")
	s.cfg.Tapecycle, s.cfg.Runtapes = 1, 2
	random := filepath.Join(s.dir, "random")
	randomFiles(t, random, 5, 1<<20) // incompressible: more than one 4 MiB cartridge
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: random, Dumptype: "default"})

	op := newOperator(t, drive)
	var logs syncBuffer
	go func() {
		if logs.waitFor(t, func(log string) bool { return strings.Contains(log, "operator action needed") }) {
			op.swap("TAPE02")
		}
	}()
	rep, out, err := s.night(t, Deps{Log: slogTo(&logs)})
	if err != nil {
		t.Fatalf("night: %v\n%s\n%s", err, out, logs.String())
	}
	if len(rep.Volumes) != 2 || rep.Volumes[0].Label != "test-001" || rep.Volumes[1].Label != "test-002" || !strings.Contains(out, "spans 2 volumes") {
		t.Fatalf("night volumes %+v\n%s", rep.Volumes, out)
	}
	op.carts["test-001"], op.carts["test-002"] = "TAPE01", "TAPE02"
	op.take()

	// Which files of the random DLE lie wholly in part 1, and in part 2.
	cat, err := catalog.Open(s.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	inPart := map[string]string{} // volume -> a file read from it alone
	names, _ := os.ReadDir(random)
	for _, n := range names {
		loc, err := cat.FindFile(t.Context(), "localhost", random, n.Name(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(loc.Parts) != 2 {
			t.Fatalf("the random DLE's image has %d part(s), want 2 (it spans the cartridges)", len(loc.Parts))
		}
		if need := indexd.Needed([][]catalog.Part{indexd.PartsFor(loc.Parts, loc.Frames)}); len(need) == 1 {
			inPart[need[0]] = n.Name()
		}
	}
	cat.Close()
	if inPart["test-001"] == "" || inPart["test-002"] == "" {
		t.Fatalf("no file lies wholly in one part: %v", inPart)
	}

	vols, err := VolumeSource(s.cfg, Deps{}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	// checkAsked checks a restore said the volumes needed first, then
	// asked for the cartridges in that order.
	checkAsked := func(what string, need, brought []string) {
		t.Helper()
		said, got := op.take()
		if len(said) == 0 || said[0] != "The following tapes are needed: "+strings.Join(need, " ") {
			t.Errorf("%s: told first %q, want the volumes needed %v", what, said, need)
		}
		if strings.Join(got, " ") != strings.Join(brought, " ") {
			t.Errorf("%s: asked for %v, want %v (all it said: %q)", what, got, brought, said)
		}
	}
	// From here on tapir only reads: every open of the drive is
	// read-only.
	drive.ResetTrace()
	defer func() {
		opens := drive.Opens()
		if len(opens) == 0 {
			t.Error("the fake drive saw no open")
		}
		for i, m := range opens {
			if m != syscall.O_RDONLY {
				t.Errorf("open %d of %d of the drive by a restore or verify had access mode %#o, want O_RDONLY", i+1, len(opens), m)
			}
		}
	}()

	// Verify of each volume reads the spanning image whole: test-001
	// then test-002, whichever volume is verified.
	// test-001's last image spans out onto test-002, test-002's first
	// spans in from test-001. Each volume is read in one forward pass.
	for _, label := range []string{"test-001", "test-002"} {
		drive.ResetTrace()
		res, err := Verify(t.Context(), s.cfg, label, Deps{Log: testLogger(t), Ask: op.ask})
		if err != nil || res.Bad() != 0 {
			t.Fatalf("verify %s: %+v %v", label, res, err)
		}
		spanned := false
		for _, im := range res.Images {
			spanned = spanned || im.Parts == 2 && strings.Contains(im.Detail, "all 2 parts")
		}
		if !spanned {
			t.Errorf("verify %s did not read the spanning image whole: %+v", label, res.Images)
		}
		traceMotion(t, drive.Trace())
		checkAsked("verify "+label, []string{"test-001", "test-002"}, []string{"test-001", "test-002"})
		op.swap("TAPE02")
	}
	for _, c := range []struct {
		volume  string
		brought []string
	}{
		// The night left test-002 in the drive: a file in part 2 needs
		// it alone (not part 1's volume first).
		{"test-002", nil},
		{"test-001", []string{"test-001"}},
	} {
		name := inPart[c.volume]
		got, err := restore.File(t.Context(), s.cfg, restore.Request{Host: "localhost", Path: random, File: name, To: t.TempDir(), Volumes: vols, Ask: op.ask}, testLogger(t))
		if err != nil {
			t.Fatalf("restore %s (on %s alone): %v", name, c.volume, err)
		}
		want, _ := os.ReadFile(filepath.Join(random, name))
		if b, _ := os.ReadFile(got.Written); !bytes.Equal(b, want) {
			t.Errorf("%s restored from %s differs", name, c.volume)
		}
		checkAsked("restore of "+name, []string{c.volume}, c.brought)
	}

	// The whole DLE, test-002 in the drive: both are needed, in order,
	// and each is asked for.
	op.swap("TAPE02")
	to := filepath.Join(t.TempDir(), "all")
	if _, err := restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: "localhost", Path: random, To: to, Volumes: vols, Ask: op.ask}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		want, _ := os.ReadFile(filepath.Join(random, n.Name()))
		if b, _ := os.ReadFile(filepath.Join(to, n.Name())); !bytes.Equal(b, want) {
			t.Errorf("--all: %s differs", n.Name())
		}
	}
	checkAsked("restore --all", []string{"test-001", "test-002"}, []string{"test-001", "test-002"})

	// Without anyone to ask, a volume not in the drive fails at once,
	// naming it.
	if _, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: random, File: inPart["test-001"], To: t.TempDir(), Volumes: vols}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "test-001") {
		t.Errorf("restore with nobody to ask, the volume not in the drive: %v", err)
	}

	// Ctrl-C while verify waits for a cartridge ends it with an error,
	// not with verdicts on the images.
	op.swap("TAPE02")
	ctx, cancel := context.WithCancel(t.Context())
	res, err := Verify(ctx, s.cfg, "test-001", Deps{Log: testLogger(t), Ask: func(msg string) {
		if strings.Contains(msg, "insert volume test-001") {
			cancel()
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("verify cancelled while waiting for test-001: %+v, %v", res, err)
	}
}
