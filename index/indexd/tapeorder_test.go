package indexd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// recordingVolumes lends the volumes of a source as tape drives (no random
// access) and records what the readers do with them: each Open, and on
// each drive every Seek target and every record read, checking that the
// drive only ever moves forward.
type recordingVolumes struct {
	indexd.VolumeSource

	mu    sync.Mutex
	opens []string
	log   map[string][]string // per volume: what was done, in order
	bad   []string            // moves backward
}

func newRecordingVolumes(src indexd.VolumeSource) *recordingVolumes {
	return &recordingVolumes{VolumeSource: src, log: map[string][]string{}}
}

func (r *recordingVolumes) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	dev, release, err := r.VolumeSource.Open(ctx, label, ask)
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	r.opens = append(r.opens, label)
	r.log[label] = append(r.log[label], "open")
	r.mu.Unlock()
	// Open leaves the drive at the beginning: the label is the next record.
	return &recordingDrive{tapeOnly: tapeOnly{dev}, r: r, label: label}, release, nil
}

func (r *recordingVolumes) note(label, what string, backward bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log[label] = append(r.log[label], what)
	if backward {
		r.bad = append(r.bad, fmt.Sprintf("volume %s: %s", label, what))
	}
}

// recordingDrive follows the position of the drive: file and record.
type recordingDrive struct {
	tapeOnly
	r     *recordingVolumes
	label string
	file  int64
	rec   int64
}

func (d *recordingDrive) behind(file, rec int64) bool {
	return file < d.file || (file == d.file && rec < d.rec)
}

func (d *recordingDrive) Seek(p taper.Position) error {
	d.r.note(d.label, fmt.Sprintf("seek to file %d record %d (from file %d record %d)", p.File, p.Record, d.file, d.rec), d.behind(p.File, p.Record))
	d.file, d.rec = p.File, p.Record
	return d.tapeOnly.Seek(p)
}

func (d *recordingDrive) ReadRecord(b []byte) (int, error) {
	d.r.note(d.label, fmt.Sprintf("read file %d record %d", d.file, d.rec), false)
	n, err := d.tapeOnly.ReadRecord(b)
	switch {
	case err == nil:
		d.rec++
	case errors.Is(err, io.EOF):
		d.file, d.rec = d.file+1, 0
	}
	return n, err
}

func (d *recordingDrive) Rewind() error {
	d.r.note(d.label, "rewind", true) // Open leaves the drive at the beginning: a rewind is a second pass
	d.file, d.rec = 0, 0
	return d.tapeOnly.Rewind()
}

func (d *recordingDrive) SpaceFiles(n int) error {
	d.r.note(d.label, fmt.Sprintf("space %d files", n), n < 0)
	return d.tapeOnly.SpaceFiles(n)
}

func (d *recordingDrive) SpaceRecords(n int) error {
	d.r.note(d.label, fmt.Sprintf("space %d records", n), n < 0)
	d.rec += int64(n)
	return d.tapeOnly.SpaceRecords(n)
}

// fiveImagesOnTwoVolumes makes a chain of five images of web1:/srv (levels
// 0 to 4) whose 50 files f00..f49 each come from one of them (files
// 10k..10k+9 last changed before level k), and tapes them out of chain
// order: levels 1, 3 and 4 on TEST-001, then levels 0 and 2 on TEST-002.
// Read in chain order, the restore would load TEST-002, TEST-001,
// TEST-002, TEST-001. It returns the tree and the 50 paths.
func fiveImagesOnTwoVolumes(t *testing.T, site *testsite.Site) (string, []string) {
	t.Helper()
	ctx := context.Background()
	data := filepath.Join(site.Dir, "data")
	rng := rand.New(rand.NewChaCha8([32]byte{14}))
	write := func(i int) {
		b := make([]byte, 20<<10) // does not compress: an image spans several frames
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(data, "d", fmt.Sprintf("f%02d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(data, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := range 50 {
		write(i)
		paths = append(paths, fmt.Sprintf("d/f%02d", i))
	}
	var ids []int64
	for lvl := range 5 {
		for i := 10 * lvl; lvl > 0 && i < 10*lvl+10; i++ {
			write(i)
		}
		got, err := site.Run(ctx, fmt.Sprintf("2025060%d010000", lvl+1), []testsite.DLE{{Host: "web1", Path: "/srv", Root: data, Level: lvl}},
			testsite.RunOptions{HoldingOnly: true, Listings: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	for _, vol := range []struct {
		label string
		ids   []int64
	}{{"TEST-001", []int64{ids[1], ids[3], ids[4]}}, {"TEST-002", []int64{ids[0], ids[2]}}} {
		label, err := site.Tape(ctx, "20250606010000", vol.ids)
		if err != nil || label != vol.label {
			t.Fatalf("tape onto %s: got %s, %v", vol.label, label, err)
		}
	}
	return data, paths
}

// fiveImageSite is a site whose chain of five images lies on two volumes
// (fiveImagesOnTwoVolumes), with the disk changer of its vtapes.
func fiveImageSite(t *testing.T) (*testsite.Site, taper.Changer, string, []string) {
	t.Helper()
	site, err := testsite.New(t.TempDir(), testsite.Options{Blocksize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Close() })
	data, paths := fiveImagesOnTwoVolumes(t, site)
	ch, err := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	if err != nil {
		t.Fatal(err)
	}
	return site, ch, data, paths
}

// TestRestoreReadsInTapeOrder: a restore of 50 files from five images,
// three on one volume and two on another, in a chain order that
// alternates between the volumes, loads each volume once and reads it in
// one forward pass (no rewind, no seek back), reading the images in tape
// order; the plan says so and names the volumes in that order.
func TestRestoreReadsInTapeOrder(t *testing.T) {
	site, ch, data, paths := fiveImageSite(t)
	rec := newRecordingVolumes(&indexd.DiskVolumes{Changer: ch, Catalog: site.Catalog})
	addr := serve(t, site, rec)
	cl := dial(t, site, addr, "web1", wire.RoleClient)
	q := recover.Query{Host: "web1", DLE: "/srv"}

	plan, err := cl.PlanNeeds(q, paths)
	if err != nil {
		t.Fatal(err)
	}
	var levels []int
	for _, im := range plan.Images {
		levels = append(levels, im.Level)
	}
	if !slices.Equal(levels, []int{1, 3, 4, 0, 2}) || plan.Entries != 50 {
		t.Errorf("plan: %d entries from the images of levels %v, want 50 from levels [1 3 4 0 2] (tape order)", plan.Entries, levels)
	}
	if got := strings.Join(plan.Needed, " "); got != "TEST-001 TEST-002" {
		t.Errorf("plan: needed %q, want TEST-001 TEST-002", got)
	}
	if len(rec.opens) != 0 {
		t.Errorf("planning loaded volumes %v", rec.opens)
	}

	to := t.TempDir()
	res, err := cl.Restore(context.Background(), q, paths, recover.RestoreOptions{To: to})
	if err != nil || !res.OK() || res.Restored != 50 {
		t.Fatalf("restore: %v; result %+v", err, res)
	}
	for _, p := range paths {
		a, _ := os.ReadFile(filepath.Join(data, p))
		b, err := os.ReadFile(filepath.Join(to, p))
		if err != nil || string(a) != string(b) {
			t.Errorf("%s: restored %d bytes, want %d (%v)", p, len(b), len(a), err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !slices.Equal(rec.opens, []string{"TEST-001", "TEST-002"}) {
		t.Errorf("volumes loaded %v, want TEST-001 then TEST-002, each once", rec.opens)
	}
	for _, b := range rec.bad {
		t.Errorf("the drive moved backward: %s", b)
	}
	if t.Failed() {
		for _, v := range []string{"TEST-001", "TEST-002"} {
			t.Logf("volume %s:\n  %s", v, strings.Join(rec.log[v], "\n  "))
		}
	}
}

// personVolumes is a single drive with a person: a volume is there once
// the test inserts it; Open given an Ask asks for a volume that is not and
// waits for it, or for ctx.
type personVolumes struct {
	indexd.VolumeSource

	mu       sync.Mutex
	inserted map[string]chan struct{} // closed when inserted
	gaveUp   chan error               // an Open that stopped waiting: why
}

func newPersonVolumes(src indexd.VolumeSource) *personVolumes {
	return &personVolumes{VolumeSource: src, inserted: map[string]chan struct{}{}, gaveUp: make(chan error, 1)}
}

func (p *personVolumes) slot(label string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.inserted[label]
	if !ok {
		c = make(chan struct{})
		p.inserted[label] = c
	}
	return c
}

// insert puts the volume in the drive.
func (p *personVolumes) insert(label string) {
	c := p.slot(label)
	select {
	case <-c:
	default:
		close(c)
	}
}

func (p *personVolumes) there(label string) bool {
	select {
	case <-p.slot(label):
		return true
	default:
		return false
	}
}

func (p *personVolumes) Properties() indexd.SourceProperties {
	pr := p.VolumeSource.Properties()
	pr.Where, pr.WaitsForPerson = "the drive /dev/nst0", true
	return pr
}

func (p *personVolumes) Locate(ctx context.Context, label string) (string, error) {
	if !p.there(label) {
		return "", fmt.Errorf("%w: volume %s is not in the drive /dev/nst0: insert it", indexd.ErrVolumeMissing, label)
	}
	return "in the drive /dev/nst0", nil
}

func (p *personVolumes) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	if !p.there(label) {
		if ask == nil {
			return nil, nil, fmt.Errorf("%w: volume %s is not in the drive /dev/nst0", indexd.ErrVolumeMissing, label)
		}
		ask(fmt.Sprintf("insert volume %s into /dev/nst0", label))
		select {
		case <-p.slot(label):
		case <-ctx.Done():
			err := fmt.Errorf("volume %s: waiting for it: %w", label, context.Cause(ctx))
			p.gaveUp <- err
			return nil, nil, err
		}
	}
	return p.VolumeSource.Open(ctx, label, ask)
}

// TestRestoreAsksForEachVolume: with a single drive that waits for a
// person, the plan counts the volumes not in the drive as available (the
// restore will ask), and the restore asks the shell for each volume in
// tape order, once, and goes on when it is inserted, however long that
// takes (the shell's stall deadline does not apply while it waits).
func TestRestoreAsksForEachVolume(t *testing.T) {
	site, ch, _, paths := fiveImageSite(t)
	person := newPersonVolumes(&indexd.DiskVolumes{Changer: ch, Catalog: site.Catalog})
	rec := newRecordingVolumes(person)
	addr := serve(t, site, rec)
	cl := dial(t, site, addr, "web1", wire.RoleClient)
	q := recover.Query{Host: "web1", DLE: "/srv"}

	plan, err := cl.PlanNeeds(q, paths)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range plan.Images {
		for _, v := range im.Volumes {
			if !v.Available || !strings.Contains(v.Where, "you will be asked to insert it") {
				t.Errorf("plan: volume %+v of the level %d image: want available, the person asked for it", v, im.Level)
			}
		}
	}

	var asks []string
	res, err := cl.Restore(context.Background(), q, paths, recover.RestoreOptions{To: t.TempDir(), Ask: func(msg string) {
		asks = append(asks, msg)
		person.insert(strings.Fields(msg)[2]) // "insert volume LABEL into ..."
	}})
	if err != nil || !res.OK() || res.Restored != 50 {
		t.Fatalf("restore: %v; result %+v", err, res)
	}
	if want := []string{"insert volume TEST-001 into /dev/nst0", "insert volume TEST-002 into /dev/nst0"}; !slices.Equal(asks, want) {
		t.Errorf("asked %q, want %q", asks, want)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !slices.Equal(rec.opens, []string{"TEST-001", "TEST-002"}) {
		t.Errorf("volumes loaded %v, want TEST-001 then TEST-002, each once", rec.opens)
	}
}

// TestInterruptWhileAsked: ^C while the server waits for a person to
// insert a volume ends the extract, and the server stops waiting.
func TestInterruptWhileAsked(t *testing.T) {
	site, ch, _, paths := fiveImageSite(t)
	person := newPersonVolumes(&indexd.DiskVolumes{Changer: ch, Catalog: site.Catalog})
	addr := serve(t, site, person)
	cl := dial(t, site, addr, "web1", wire.RoleClient)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asks []string
	_, err := cl.Restore(ctx, recover.Query{Host: "web1", DLE: "/srv"}, paths, recover.RestoreOptions{To: t.TempDir(), Ask: func(msg string) {
		asks = append(asks, msg)
		cancel() // the person presses ^C instead
	}})
	if err == nil || len(asks) != 1 {
		t.Fatalf("an interrupted restore: error %v after asking %q", err, asks)
	}
	cl.Close() // the shell ends on ^C (RunShell): the connection closes
	if err := <-person.gaveUp; !errors.Is(err, indexd.ErrPeerGone) {
		t.Errorf("the server stopped waiting for the volume with %v, want the shell gone", err)
	}
}

// insertingOut is a shell's output that inserts each volume the shell
// is asked for, as the person reading it would.
type insertingOut struct {
	strings.Builder
	person *personVolumes
}

func (o *insertingOut) Write(p []byte) (int, error) {
	if f := strings.Fields(string(p)); len(f) > 2 && f[0] == "insert" && f[1] == "volume" {
		o.person.insert(f[2])
	}
	return o.Builder.Write(p)
}

// TestShellExtractAsksForVolumes: the shell's extract names the tapes it
// needs before asking to continue, prints each request for a volume with
// how to cancel, and restores everything once they are inserted.
func TestShellExtractAsksForVolumes(t *testing.T) {
	site, ch, _, _ := fiveImageSite(t)
	person := newPersonVolumes(&indexd.DiskVolumes{Changer: ch, Catalog: site.Catalog})
	addr := serve(t, site, person)
	out := &insertingOut{person: person}
	var questions []string
	sh := &recover.Shell{Client: dial(t, site, addr, "web1", wire.RoleClient), Out: out, Lcd: t.TempDir(),
		Ask: func(q string, def bool) bool { questions = append(questions, fmt.Sprintf("%s %v", q, def)); return def }}
	for _, c := range []string{"sethost web1", "setdisk /srv", "add d", "extract"} {
		if err := sh.Exec(c); err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out.String())
		}
	}
	got := out.String()
	for _, want := range []string{
		"level 1 image of 2025-06-02 01:00:00: volume TEST-001 (not in the drive now: you will be asked to insert it)\n",
		"The following tapes are needed: TEST-001 TEST-002\n",
		"insert volume TEST-001 into /dev/nst0 (waiting; Ctrl-C cancels the extract)\n",
		"insert volume TEST-002 into /dev/nst0 (waiting; Ctrl-C cancels the extract)\n",
		"Restored 51 entries",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the shell's output lacks %q:\n%s", want, got)
		}
	}
	if !slices.Equal(questions, []string{"Continue? true"}) {
		t.Errorf("questions asked %q, want Continue? with yes as the default", questions)
	}
}
