package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
)

// tapir check: a healthy site has no problem and says which volume the
// next run will write; each thing that would break the night is one line
// naming where and what to do.
func TestCheck(t *testing.T) {
	s := newSite(t, "")
	c := Check(context.Background(), s.cfg, Deps{}, CheckOptions{Clients: true, Mail: true})
	if len(c.Problems) != 0 {
		t.Fatalf("problems on a healthy site:\n%s", c.Text())
	}
	if !strings.Contains(c.Text(), "Will write to a new volume, labelled test-001 in slot 1") || !strings.Contains(c.Text(), "No problems found.") {
		t.Errorf("check text:\n%s", c.Text())
	}

	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: filepath.Join(s.dir, "no-such-dir"), Dumptype: "default"})
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "gone.example", Path: "/etc", Dumptype: "default"})
	s.cfg.Hosts["gone.example"] = config.Host{Address: "127.0.0.1:1"}
	s.cfg.Autolabel, s.cfg.Changer.Path = "", filepath.Join(s.dir, "blank-vtapes")
	s.cfg.Mailto = []string{"ops@example.com"}
	s.cfg.Mail.Server, s.cfg.Mail.Timeout = "127.0.0.1:1", config.Duration(2*time.Second)
	c = Check(context.Background(), s.cfg, Deps{Clock: offsetClock(20 * 365 * 24 * time.Hour)}, CheckOptions{Clients: true, Mail: true})
	text := c.Text()
	for _, want := range []string{
		"no-such-dir",               // the agent cannot read the DLE
		"host gone.example",         // unreachable agent
		"volumes: ",                 // no usable volume
		"next run will be degraded", // and what that means
		"mail server 127.0.0.1:1",   // mail unreachable
		"expired on",                // certificates, twenty years on
		"problems found.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("check does not say %q:\n%s", want, text)
		}
	}
	for _, p := range c.Problems {
		if strings.Contains(p.What, "\n") {
			t.Errorf("problem on more than one line: %q", p.What)
		}
	}
}

// A run does the server side of the check first and reports what it found.
func TestDumpReportsPreflight(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Holding[0].Use = 1 << 60 // more than any filesystem here
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Preflight) != 1 || !strings.Contains(rep.Preflight[0].What, "but use = ") || !strings.Contains(out, "but use = ") {
		t.Errorf("preflight %+v\n%s", rep.Preflight, out)
	}
}

// check says what the run may fill on the holding disk, its use limit
// and what reserve leaves to fulls without a volume, counted as the run
// counts them: not the filesystem's free space.
func TestCheckHoldingLimits(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Holding[0].Use = 64 << 20
	s.cfg.Reserve = 75
	text := Check(context.Background(), s.cfg, Deps{}, CheckOptions{}).Text()
	for _, want := range []string{
		"a run may fill 64 MiB (use = 64 MiB), of which 0 B hold images of earlier runs: 64 MiB left for tonight",
		"Holding reserve = 75%: on a night without a usable volume, fulls may use 16 MiB of the 64 MiB in all",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("check does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "free.") {
		t.Errorf("check quotes the filesystem's free space:\n%s", text)
	}
}
