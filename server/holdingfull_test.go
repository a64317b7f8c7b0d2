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
	s.cfg.Autolabel = ""
	s.cfg.Changer.Path = filepath.Join(s.dir, "blank-vtapes")
	s.cfg.Reserve = 0               // fulls may use the whole holding disk
	s.cfg.Holding[0].Use = 20 << 20 // more than one growth step (16 MiB), less than the image
	// Once planned (the estimate is taken), the DLE grows by 30 MiB.
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
	rep, out, _ := s.night(t, Deps{Log: log})
	if growErr != nil {
		t.Fatal(growErr)
	}
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
