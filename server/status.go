package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/internal/bytesize"
	"github.com/tapir-backup/tapir/report"
)

// Status is what a run in progress publishes about itself, for `tapir
// status`: it is written (atomically) to StatusFile every second and when
// the run ends.
type Status struct {
	PID       int        `json:"pid"`
	Host      string     `json:"host"`
	Config    string     `json:"config"`
	Datestamp string     `json:"datestamp"`
	Kind      string     `json:"kind"`
	Started   time.Time  `json:"started"`
	Updated   time.Time  `json:"updated"`
	Phase     string     `json:"phase"` // estimating, dumping, taping, done
	Degraded  string     `json:"degraded,omitempty"`
	Volume    string     `json:"volume,omitempty"` // being written
	Result    string     `json:"result,omitempty"` // the run's status once done
	DLEs      []DLEState `json:"dles"`
}

// DLEState is one DLE (or flushed image) in a Status.
type DLEState struct {
	Host   string  `json:"host"`
	Path   string  `json:"path"`
	Level  int     `json:"level"`
	State  string  `json:"state"` // waiting, estimating, dumping, holding (waits for the taper), taping, done, failed, skipped, delayed
	Target string  `json:"target,omitempty"`
	Bytes  int64   `json:"bytes"`
	Rate   float64 `json:"rate"` // bytes per second since the dump started
	// Estimate is the bytes the dump is expected to send (the planner's
	// estimate at its level, times the DLE's compression ratio when the
	// agent compresses); 0 when unknown.
	Estimate int64     `json:"estimate,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Reason   string    `json:"reason,omitempty"`
}

// StatusFile is where runs of cfg publish their Status: beside a SQLite
// catalog, in the state directory for a catalog on PostgreSQL (each
// server sharing it has its own).
func StatusFile(cfg *config.Config) string {
	if config.IsPostgresDSN(cfg.Catalog) {
		return filepath.Join(cfg.StateDir, "status.json")
	}
	return cfg.Catalog + ".status.json"
}

// progress is a job's live state, updated by the dumper and the taper and
// read by the publisher: atomics only, so that reading never races.
type progress struct {
	state  atomic.Value // string
	target atomic.Value // string
	reason atomic.Value // string
	level  atomic.Int64
	bytes  atomic.Int64
	est    atomic.Int64 // bytes the dump is expected to send; 0 unknown
	since  atomic.Int64 // unix nanoseconds
}

// mark records a new state (and why, for failed, holding, skipped...).
func (p *progress) mark(state, reason string, now time.Time) {
	p.state.Store(state)
	p.reason.Store(reason)
	p.since.Store(now.UnixNano())
}

func (p *progress) get() (state, target, reason string) {
	s, _ := p.state.Load().(string)
	t, _ := p.target.Load().(string)
	r, _ := p.reason.Load().(string)
	if s == "" {
		s = "waiting"
	}
	return s, t, r
}

// publisher writes the run's Status while it runs.
type publisher struct {
	r    *run
	path string
	jobs func() []*job
	stop chan struct{}
	done sync.WaitGroup

	mu    sync.Mutex
	phase string
}

func (r *run) publish(jobs func() []*job) *publisher {
	p := &publisher{r: r, path: StatusFile(r.cfg), jobs: jobs, stop: make(chan struct{}), phase: "estimating"}
	p.write()
	p.done.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.r.checkCancel()
				p.write()
			}
		}
	})
	return p
}

func (p *publisher) setPhase(ph string) {
	p.mu.Lock()
	p.phase = ph
	p.mu.Unlock()
	p.write()
}

// end writes the final status.
func (p *publisher) end(result string) {
	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	p.phase = "done"
	p.mu.Unlock()
	p.writeResult(result)
}

func (p *publisher) write() { p.writeResult("") }

func (p *publisher) writeResult(result string) {
	r := p.r
	now := r.clock.Now()
	host, _ := os.Hostname()
	p.mu.Lock()
	st := Status{PID: os.Getpid(), Host: host, Config: r.cfg.File, Datestamp: r.datestamp, Kind: r.rep.Kind,
		Started: r.rep.Start, Updated: now, Phase: p.phase, Result: result}
	p.mu.Unlock()
	if r.rep.Degraded != nil {
		st.Degraded = r.rep.Degraded.Reason
	}
	st.Volume = r.vols.current()
	for _, j := range p.jobs() {
		s, target, reason := j.prog.get()
		d := DLEState{Host: j.dle.Host, Path: j.dle.Path, Level: int(j.prog.level.Load()), State: s, Target: target, Bytes: j.prog.bytes.Load(),
			Estimate: j.prog.est.Load(), Reason: reason}
		if ns := j.prog.since.Load(); ns != 0 {
			d.Since = time.Unix(0, ns)
			if el := now.Sub(d.Since).Seconds(); el > 0 && s == "dumping" {
				d.Rate = float64(d.Bytes) / el
			}
		}
		st.DLEs = append(st.DLEs, d)
	}
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return
	}
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		r.log.Warn("write run status", "file", tmp, "err", err)
		return
	}
	if err := os.Rename(tmp, p.path); err != nil {
		r.log.Warn("write run status", "file", p.path, "err", err)
	}
}

// ReadStatus reads the status of the newest run of cfg. live tells whether
// that run is still going (its process is alive and it is not done).
func ReadStatus(cfg *config.Config) (st *Status, live bool, err error) {
	b, err := os.ReadFile(StatusFile(cfg))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("no run of %s has published its status yet (%s does not exist)", cfg.File, StatusFile(cfg))
	}
	if err != nil {
		return nil, false, err
	}
	st = &Status{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, false, fmt.Errorf("%s: %w (a damaged status file; the next run rewrites it)", StatusFile(cfg), err)
	}
	host, _ := os.Hostname()
	live = st.Phase != "done" && st.Host == host && syscall.Kill(st.PID, 0) == nil
	return st, live, nil
}

// WriteStatus renders a Status for people.
func WriteStatus(w io.Writer, st *Status, live bool, now time.Time) error {
	switch {
	case live:
		fmt.Fprintf(w, "Run %s (%s) of %s, pid %d, running for %s: %s", st.Datestamp, kindOr(st.Kind), st.Config, st.PID, now.Sub(st.Started).Round(time.Second), st.Phase)
		if st.Volume != "" {
			fmt.Fprintf(w, ", writing volume %s", st.Volume)
		}
		fmt.Fprintln(w)
	case st.Phase == "done":
		fmt.Fprintf(w, "No run in progress. The last run, %s (%s) of %s, ended %s ago: %s.\n", st.Datestamp, kindOr(st.Kind), st.Config, now.Sub(st.Updated).Round(time.Second), st.Result)
	default:
		fmt.Fprintf(w, "No run in progress. Run %s (pid %d) stopped publishing %s ago without finishing: the process died; the next run cleans up after it.\n",
			st.Datestamp, st.PID, now.Sub(st.Updated).Round(time.Second))
	}
	if st.Degraded != "" {
		fmt.Fprintf(w, "DEGRADED: %s\n", st.Degraded)
	}
	dles := append([]DLEState(nil), st.DLEs...)
	order := map[string]int{"dumping": 0, "taping": 1, "estimating": 2, "holding": 3, "waiting": 4, "failed": 5, "delayed": 6, "skipped": 7, "done": 8}
	sort.SliceStable(dles, func(i, j int) bool { return order[dles[i].State] < order[dles[j].State] })
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tDISK\tLEVEL\tSTATE\tBYTES\tOF EST.\tRATE\tETA\tNOTE")
	for _, d := range dles {
		rate := ""
		if d.Rate > 0 {
			rate = bytesize.Format(int64(d.Rate)) + "/s"
		}
		state := d.State
		if d.Target != "" && (state == "dumping") {
			state += " to " + d.Target
		}
		pct, eta := progressOf(d)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Host, d.Path, d.Level, state, bytesize.Format(d.Bytes), pct, rate, eta, oneLine(d.Reason))
	}
	return tw.Flush()
}

// progressOf is a dump's share of its estimate ("42 %") and the time
// left at its rate so far ("3m20s"); "" when unknown or not dumping. A
// dump past its estimate shows its share ("130 %") and "past est.".
func progressOf(d DLEState) (pct, eta string) {
	if d.State != "dumping" || d.Estimate <= 0 {
		return "", ""
	}
	pct = fmt.Sprintf("%.0f %%", 100*float64(d.Bytes)/float64(d.Estimate))
	switch {
	case d.Bytes >= d.Estimate:
		eta = "past est."
	case d.Rate > 0:
		eta = (time.Duration(float64(d.Estimate-d.Bytes) / d.Rate * float64(time.Second))).Round(time.Second).String()
	}
	return pct, eta
}

func kindOr(k string) string {
	if k == "" {
		return report.KindDump
	}
	return k
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

// WatchOptions drive Watch.
type WatchOptions struct {
	Ticks  <-chan time.Time // when to look again (a ticker's channel)
	Clear  bool             // clear the terminal before each look
	Now    func() time.Time // nil: time.Now
	Looked func()           // called after each look; nil: nothing (tests wait on it)
}

// Watch is `tapir status --watch`: it shows the run of cfg in progress at
// every tick, and when none runs (none has yet, or the last one ended)
// it says so and waits for the next night instead of returning. It
// returns when ctx ends.
func Watch(ctx context.Context, cfg *config.Config, w io.Writer, opt WatchOptions) error {
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	for {
		if opt.Clear {
			fmt.Fprint(w, "\033[H\033[2J")
		}
		st, live, err := ReadStatus(cfg)
		switch {
		case err != nil:
			fmt.Fprintf(w, "%v\n", err)
		default:
			if err := WriteStatus(w, st, live, now()); err != nil {
				return err
			}
		}
		if !live {
			next := ""
			if s, err := parseSchedule(cfg.Schedule); err == nil && cfg.Schedule != "" {
				next = s.Next(now().In(cfg.Location())).Format("Mon 2006-01-02 15:04")
			}
			if next != "" {
				fmt.Fprintf(w, "Waiting for the next night (schedule %q: %s), or a tapir dump.\n", cfg.Schedule, next)
			} else {
				fmt.Fprintln(w, "Waiting for the next night (tapir server or tapir dump).")
			}
		}
		if opt.Looked != nil {
			opt.Looked()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-opt.Ticks:
		}
	}
}
