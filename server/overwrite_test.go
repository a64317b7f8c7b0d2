package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/taper"
)

// TestOverwriteKillsProperty plays random histories of runs reusing
// volumes and of tapir label, on real vtapes and a real catalog, each
// step killed (as kill -9 would) at a random point of the two-phase
// overwrite or run to its end, some on write-protected slots. After every
// step the next process looks at the changer (resolveOverwrites), and then
// the catalog and the media must agree: no volume stays marked, every
// label the catalog knows is on a slot with the datestamp the catalog
// says, and every image the catalog lists is on a volume whose label has
// not been rewritten since (promise 7).
func TestOverwriteKillsProperty(t *testing.T) {
	histories := 40
	if testing.Short() {
		histories = 8
	}
	for h := range histories {
		t.Run(fmt.Sprint(h), func(t *testing.T) { overwriteHistory(t, rand.New(rand.NewPCG(uint64(h), 7))) })
	}
}

func overwriteHistory(t *testing.T, r *rand.Rand) {
	const slots, bs = 3, 64 << 10
	dir := t.TempDir()
	root := filepath.Join(dir, "vtapes")
	os.MkdirAll(root, 0o750)
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	ch, err := taper.NewDiskChanger(root, slots, 64<<20, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 1, 1, 1, 0, 0, 0, time.UTC)
	labels := 0
	steps := []string{"begun", "written", "read back", "done", "started", "taped", ""}
	var history []string
	for step := range 25 {
		now := t0.Add(time.Duration(step) * time.Hour)
		ds := now.Format("20060102150405")
		slot := 1 + r.IntN(slots)
		inv := mustInventory(t, ch)
		si := inv[slot-1]
		old := ""
		if si.Label != nil {
			old = si.Label.Label
		}
		kill := steps[r.IntN(len(steps))]
		protect := r.IntN(6) == 0
		slotDir := filepath.Join(root, fmt.Sprintf("slot%d", slot))
		if protect {
			os.MkdirAll(slotDir, 0o750)
			os.Chmod(slotDir, 0o555)
		}
		hook := func(s string) error {
			if s == kill {
				return errKilled
			}
			return nil
		}
		dev, err := ch.Load(context.Background(), slot)
		if err != nil {
			t.Fatal(err)
		}
		relabel := old == "" || r.IntN(3) == 0
		what := ""
		if relabel {
			labels++
			l := taper.Label{Datestamp: taper.NeverWritten, Label: fmt.Sprintf("T-%03d", labels), Org: "test", Blocksize: bs, Created: now}
			if r.IntN(2) == 0 {
				l.Datestamp = ds // autolabel in a run
			}
			what = fmt.Sprintf("step %d: label slot %d (%s) as %s of %s, killed at %q, protected %v", step, slot, old, l.Label, l.Datestamp, kill, protect)
			_, err = writeLabelSteps(t.Context(), cat, dev, old, l, slot, now, hook)
			if err == nil && l.Datestamp != taper.NeverWritten {
				err = runWrites(t.Context(), cat, dev, l.Label, slot, ds, now, hook)
			}
		} else {
			l := taper.Label{Datestamp: ds, Label: old, Org: "test", Blocksize: bs, Created: now}
			what = fmt.Sprintf("step %d: run %s reuses %s in slot %d, killed at %q, protected %v", step, ds, old, slot, kill, protect)
			_, err = writeLabelSteps(t.Context(), cat, dev, old, l, slot, now, hook)
			if err == nil {
				err = runWrites(t.Context(), cat, dev, old, slot, ds, now, hook)
			}
		}
		history = append(history, what)
		if err != nil && !errors.Is(err, errKilled) && !protect {
			t.Fatalf("%s: %v", what, err)
		}
		ch.Eject(context.Background())
		if protect {
			os.Chmod(slotDir, 0o750)
		}
		// The next process starts and looks at the changer.
		if _, err := resolveOverwrites(t.Context(), cat, mustInventory(t, ch), bs, now); err != nil {
			t.Fatalf("%s: resolve: %v", what, err)
		}
		if msg := mediaAgrees(t, cat, mustInventory(t, ch), root); msg != "" {
			t.Fatalf("after %s: %s\nhistory:\n%s", what, msg, strings.Join(history, "\n"))
		}
	}
}

// runWrites is what a run does after its label: phase 2, then one image
// on the volume, recorded in the catalog.
func runWrites(ctx context.Context, cat *catalog.Catalog, dev taper.Device, label string, slot int, ds string, now time.Time, hook func(string) error) error {
	if _, err := cat.StartVolumeWrite(ctx, label, slot, 64<<10, ds); err != nil {
		return err
	}
	if err := hook("started"); err != nil {
		return err
	}
	if err := dev.WriteRecord(make([]byte, 32<<10)); err != nil {
		return err
	}
	if err := dev.WriteFilemark(); err != nil {
		return err
	}
	runID, err := cat.BeginRun(ctx, ds, "test", now)
	if err != nil {
		return err
	}
	id, err := cat.CreateDump(ctx, &catalog.Dump{RunID: runID, Host: "h", Path: "/p", Level: 0, FrameSize: 1 << 20, Started: now})
	if err != nil {
		return err
	}
	frames := []image.Frame{{Index: 0, TarOffset: 0, TarSize: 100, Offset: 0, Size: 50}}
	if err := cat.SetDumpHolding(ctx, id, 100, 50, strings.Repeat("ab", 32), 0, "/hold/x", frames, now); err != nil {
		return err
	}
	if err := cat.CommitTaped(ctx, id, []catalog.Part{{Volume: label, Part: 1, FileNo: 1, LogicalPos: -1, Length: 50}}, now); err != nil {
		return err
	}
	return hook("taped")
}

// mediaAgrees says what the catalog believes that the volumes contradict.
func mediaAgrees(t *testing.T, cat *catalog.Catalog, inv []taper.SlotInfo, root string) string {
	t.Helper()
	onSlot := map[string]taper.SlotInfo{}
	for _, s := range inv {
		if s.Label != nil {
			onSlot[s.Label.Label] = s
		}
	}
	vols, err := cat.Volumes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		s, ok := onSlot[v.Label]
		if v.Overwriting != "" {
			return fmt.Sprintf("volume %s is still marked as being overwritten (%s as %s)", v.Label, v.Overwriting, v.OverwritingAs)
		}
		if !ok {
			return fmt.Sprintf("the catalog knows %s, which no slot carries", v.Label)
		}
		want := v.Written
		if want == "" {
			want = taper.NeverWritten
		}
		if s.Label.Datestamp != want && !(v.Written == "" && s.Label.Datestamp != taper.NeverWritten) {
			return fmt.Sprintf("the catalog says %s was written %q, its label says %s", v.Label, v.Written, s.Label.Datestamp)
		}
		dumps, err := cat.DumpsOnVolume(t.Context(), v.Label)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dumps {
			if d.Datestamp != s.Label.Datestamp {
				return fmt.Sprintf("the catalog lists an image of run %s on %s, whose label was rewritten by %s", d.Datestamp, v.Label, s.Label.Datestamp)
			}
			if m, _ := filepath.Glob(filepath.Join(root, fmt.Sprintf("slot%d", s.Slot), "00001.*")); len(m) == 0 {
				return fmt.Sprintf("the catalog lists an image on %s file 1, which is not on the volume", v.Label)
			}
		}
	}
	return ""
}
