package server

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report"
)

// A DLE that grows between its estimate and its dump outgrows the
// holding space of a degraded night: its reason quotes what the holding
// disk really took when it ran out, not the estimate it outgrew, and does
// not promise a volume the night does not have.
func TestHoldingFullQuotesTheRealSize(t *testing.T) {
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 1, 4096, "grows")
	dir := s.cfg.DLEs[0].Path
	log, grown := degradedAndGrowing(t, s, dir)
	rep, out, _ := s.night(t, Deps{Log: log})
	grown()
	if rep == nil || rep.Degraded == nil || len(rep.DLEs) != 1 {
		t.Fatalf("want a degraded night of one DLE:\n%s", out)
	}
	d := rep.DLEs[0]
	m := regexp.MustCompile(`ran out after ([0-9.]+) MiB of the image had been written \(the estimate was about ([0-9.]+) KiB\)`).FindStringSubmatch(d.Reason)
	if d.Status != report.StatusFailed || m == nil {
		t.Fatalf("%s %q: want FAILED with the size written when the holding disk ran out\n%s", d.Status, d.Reason, out)
	}
	if mib, _ := strconv.ParseFloat(m[1], 64); mib < 16 || mib > 20 {
		t.Errorf("reason says %s MiB written; the holding disk took at least one growth step (16 MiB) and at most its use (20 MiB)", m[1])
	}
	if strings.Contains(d.Reason, "straight to a volume") || !strings.Contains(d.Reason, "no volume can be written tonight") {
		t.Errorf("reason %q promises a volume the degraded night does not have", d.Reason)
	}
	if len(d.Retries) != 0 {
		t.Errorf("retried %d times; without a volume nothing can change", len(d.Retries))
	}
}

// A due full that outgrows the holding space of a degraded night is
// demoted to its fallback incremental, and the demotion quotes what the
// holding disk took, not the estimate.
func TestHoldingFullDemotesWithTheRealSize(t *testing.T) {
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 1, 4096, "grows")
	dir := s.cfg.DLEs[0].Path
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	log, grown := degradedAndGrowing(t, s, dir)
	// Eight days on, the full is due; the incremental holds the new
	// files too, and is bigger than the holding disk as well: it fails
	// with its own size, after the full was demoted quoting the full's.
	rep, out, _ := s.night(t, Deps{Log: log, Clock: offsetClock(8 * 24 * time.Hour)})
	grown()
	if rep == nil || rep.Degraded == nil || len(rep.DLEs) != 1 {
		t.Fatalf("want a degraded night of one DLE:\n%s", out)
	}
	d := rep.DLEs[0]
	if d.Level != 1 || !regexp.MustCompile(`its full \(at least [0-9.]+ MiB, what an earlier attempt wrote before the holding disk ran out\) .*demoted to level 1`).MatchString(d.Demoted) {
		t.Errorf("level %d, demoted %q: want the full demoted to level 1 quoting the size written\n%s", d.Level, d.Demoted, out)
	}
	if len(d.Retries) == 0 || !strings.Contains(d.Retries[0].Reason, "dumped again at its fallback level 1") {
		t.Errorf("attempts %+v: want the full's attempt, then the fallback", d.Retries)
	}
	// The incremental tried the holding disk itself, and says what it
	// wrote there, not the full's size.
	if d.Status != report.StatusFailed || !regexp.MustCompile(`ran out after [0-9.]+ MiB of the image had been written \(the estimate was about [0-9.]+ (KiB|MiB)\): the holding disks hold 20 MiB in all, and no volume can be written tonight$`).MatchString(d.Reason) {
		t.Errorf("%s %q: want the incremental's own holding-full failure", d.Status, d.Reason)
	}
}

// degradedAndGrowing makes s's next night degraded (no usable volume: a
// changer of blank slots and no autolabel) with a holding disk whose use
// (20 MiB) is more than one growth step (16 MiB) and less than the image
// will be, and returns the night's logger, which grows dir by 30 MiB once
// the night has planned (the estimate is taken), and grown, which fails
// the test if that growth failed.
func degradedAndGrowing(t *testing.T, s *site, dir string) (*slog.Logger, func()) {
	t.Helper()
	s.cfg.Autolabel = ""
	s.cfg.Changer.Path = filepath.Join(s.dir, "blank-vtapes")
	s.cfg.Reserve = 0 // fulls may use the whole holding disk
	s.cfg.Holding[0].Use = 20 << 20
	var once sync.Once
	var growErr error
	log := slog.New(notifyHandler{testLogger(t).Handler(), func(r slog.Record) {
		if r.Message != "planned" {
			return
		}
		once.Do(func() {
			for i := range 3 {
				b := make([]byte, 10<<20)
				rand.Read(b)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("late%d", i)), b, 0o644); err != nil {
					growErr = err
				}
			}
		})
	}})
	return log, func() {
		t.Helper()
		if growErr != nil {
			t.Fatal(growErr)
		}
	}
}
