package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/planner"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/wire"
)

// plannerConfig maps the configuration to the planner's settings.
func plannerConfig(cfg *config.Config) planner.Config {
	pc := planner.DefaultConfig()
	pc.Dumpcycle, pc.Runspercycle, pc.Runtapes = cfg.Dumpcycle, cfg.Runspercycle, cfg.Runtapes
	pc.Drives = cfg.Changer.Tapers
	tt := cfg.Tapetype()
	pc.TapeLength = int64(tt.Length)
	pc.Bumpsize, pc.Bumppercent, pc.Bumpdays, pc.Bumpmult = int64(cfg.Bumpsize), cfg.Bumppercent, cfg.Bumpdays, cfg.Bumpmult
	pc.Maxpromoteday, pc.CompRatio, pc.FutilePercent = cfg.Maxpromoteday, cfg.CompRatio, cfg.FutilePercent
	pc.ImageOverhead = 32<<10 + int64(tt.Blocksize)
	return pc
}

// plannerDLEs reads what the planner needs of every DLE from the catalog:
// the good dumps (on a volume or safe on the holding disk) and the force
// flags. Times are in the configuration's time zone, where the planner
// counts its days.
func plannerDLEs(ctx context.Context, cat *catalog.Catalog, cfg *config.Config) ([]planner.DLE, error) {
	forced, err := cat.Forced(ctx)
	if err != nil {
		return nil, err
	}
	isForced := map[catalog.DLE]bool{}
	for _, f := range forced {
		isForced[f] = true
	}
	loc := cfg.Location()
	out := make([]planner.DLE, 0, len(cfg.DLEs))
	for _, d := range cfg.DLEs {
		dt := cfg.Dumptype(d)
		pd := planner.DLE{Host: d.Host, Path: d.Path, Strategy: planner.Strategy(dt.Strategy), Priority: planner.Priority(dt.Priority),
			Forced: isForced[catalog.DLE{Host: d.Host, Path: d.Path}]}
		if dt.Compress == config.CompressNone {
			pd.CompRatio = 1
		}
		dumps, err := cat.Dumps(ctx, d.Host, d.Path)
		if err != nil {
			return nil, err
		}
		for _, x := range dumps {
			if x.Status != catalog.DumpGood && x.Status != catalog.DumpHolding {
				continue
			}
			pd.History = append(pd.History, planner.Dump{Time: x.Started.In(loc), Level: x.Level, OrigBytes: x.OrigSize, OutBytes: x.PayloadSize})
		}
		out = append(out, pd)
	}
	return out, nil
}

// estimates asks every agent, in parallel (inparallel at a time, etimeout
// each), for the sizes of the levels the planner may choose. A failed
// estimate leaves its levels out (the planner then never picks them) and
// its error is returned by DLE catalog.
func estimates(ctx context.Context, cfg *config.Config, files wire.Files, datestamp string, pdles []planner.DLE, now time.Time, log *slog.Logger) (map[int]map[int]wire.Estimate, map[int]error) {
	pc := plannerConfig(cfg)
	est := make(map[int]map[int]wire.Estimate, len(pdles))
	errs := map[int]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Inparallel)
	for i := range pdles {
		d := cfg.DLEs[i]
		dt := cfg.Dumptype(d)
		if dt.Strategy == "skip" {
			continue
		}
		levels := planner.EstimateLevels(pc, pdles[i], now)
		if len(levels) == 0 {
			continue
		}
		if dt.IsCommand() {
			// A command's output cannot be sized without running it: its
			// last full's size stands for it (none yet: 0).
			e := commandEstimate(pdles[i])
			est[i] = map[int]wire.Estimate{0: e}
			pdles[i].Estimates = map[int]int64{0: e.Bytes}
			log.Info("estimate of a command DLE: its last full", "host", d.Host, "path", d.Path, "bytes", e.Bytes)
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := estimateDLE(ctx, cfg, files, datestamp, d, dt, levels)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[i] = err
				log.Error("estimate failed", "host", d.Host, "path", d.Path, "err", err)
				return
			}
			est[i] = m
			pdles[i].Estimates = map[int]int64{}
			for l, e := range m {
				pdles[i].Estimates[l] = e.Bytes
				log.Info("estimate", "host", d.Host, "path", d.Path, "level", l, "bytes", e.Bytes, "files", e.Files)
			}
		})
	}
	wg.Wait()
	return est, errs
}

// commandEstimate is the estimate of a command DLE: the size of its
// newest full (the agent cannot size a command's output without running
// it), 0 before its first.
func commandEstimate(d planner.DLE) wire.Estimate {
	e := wire.Estimate{Level: 0}
	var newest time.Time
	for _, x := range d.History {
		if x.Level == 0 && !x.Time.Before(newest) {
			newest, e.Bytes = x.Time, x.OrigBytes
		}
	}
	return e
}

func estimateDLE(ctx context.Context, cfg *config.Config, files wire.Files, datestamp string, d config.DLE, dt config.Dumptype, levels []int) (map[int]wire.Estimate, error) {
	remote, err := newRemote(cfg, files, d.Host, time.Duration(cfg.Etimeout))
	if err != nil {
		return nil, err
	}
	req := dumpRequest(datestamp, d, dt, 0)
	req.Levels = levels
	// An estimate reads no data: it need not know the encryption (and an
	// agent too old to know the fields, which refuses them, still
	// estimates; its dump then fails saying why).
	req.Encrypt, req.Recipients = "", nil
	// Nor the listings (only the dumper asks for them, of an agent that
	// takes the field: see attempt).
	req.Listings = false
	est, err := remote.Estimate(ctx, req)
	if err != nil {
		return nil, err
	}
	m := map[int]wire.Estimate{}
	for _, e := range est {
		m[e.Level] = e
	}
	return m, nil
}

// plan decides tonight's level of every job with the planner, from the
// catalog's history and the agents' estimates, and fills in the jobs: the
// level, the fallback for degraded mode, the priority and the expected
// size; the DLEs the planner leaves out get their status and reason.
func (r *run) plan(ctx context.Context, jobs []*job) (*planner.Schedule, error) {
	pdles, err := plannerDLEs(ctx, r.cat, r.cfg)
	if err != nil {
		return nil, err
	}
	if r.vols.ch != nil {
		if _, _, err := lookAhead(ctx, r.cat, r.vols, pdles); err != nil {
			r.note(fmt.Sprintf("planner: the look-ahead for chains failed, no full is promoted for them tonight: %v", err))
		}
	}
	now := r.clock.Now().In(r.cfg.Location())
	est, estErr := estimates(ctx, r.cfg, r.files, r.datestamp, pdles, now, r.log)
	sched, err := planner.Plan(plannerConfig(r.cfg), pdles, now)
	if err != nil {
		return nil, err
	}
	byName := map[string]int{}
	for i, j := range jobs {
		byName[j.name()] = i
		j.est = est[i]
		j.ratioKnown = len(pdles[i].History) > 0
	}
	var order []*job
	for _, e := range sched.Entries {
		i, ok := byName[e.Host+":"+e.Path]
		if !ok {
			continue
		}
		j := jobs[i]
		j.level, j.fallback, j.why, j.prio = e.Level, e.Fallback, e.Reason, e.Priority
		j.res.Level = e.Level
		j.prog.level.Store(int64(e.Level))
		j.prog.mark("waiting", "", now)
		j.ratio = 1
		if e.EstOrig > 0 {
			j.ratio = min(float64(e.EstOut)/float64(e.EstOrig)*1.05, 1.1)
		}
		switch e.Kind {
		case planner.KindPromoted, planner.KindForced, planner.KindFutile, planner.KindNoIncrEst, planner.KindChain:
			r.note(fmt.Sprintf("planner: %s level %d: %s", j.name(), e.Level, e.Reason))
		}
		r.log.Info("planned", "host", e.Host, "path", e.Path, "level", e.Level, "fallback", e.Fallback, "why", e.Reason)
		order = append(order, j)
	}
	for _, d := range sched.Delayed {
		r.note(fmt.Sprintf("planner: %s:%s full delayed, dumped at level %d instead: %s", d.Host, d.Path, d.Level, d.Reason))
	}
	for _, s := range sched.Skipped {
		i, ok := byName[s.Host+":"+s.Path]
		if !ok {
			continue
		}
		j := jobs[i]
		j.res.Reason = s.Reason
		switch s.Cause {
		case planner.CauseStrategy:
			j.res.Status = report.StatusSkipped
		case planner.CauseFit:
			j.res.Status = report.StatusDelayed
		default:
			j.res.Status = report.StatusFailed
			if err := estErr[i]; err != nil {
				j.res.Reason = "estimate failed: " + err.Error()
			}
		}
		j.prog.mark(strings.ToLower(j.res.Status), j.res.Reason, now)
	}
	for _, n := range sched.Notes {
		r.note("planner: " + n)
	}
	// The jobs the planner scheduled, in its order (priority, then size).
	rest := jobs[:0:0]
	for _, j := range jobs {
		if j.res.Status != "" {
			rest = append(rest, j)
		}
	}
	copy(jobs, append(order, rest...))
	return sched, nil
}

// lookAhead marks the DLEs whose newest chain is on a volume the next
// runs must reuse (volumes.reuseAtRisk), for the planner to promote.
// It returns the DLEs it marked and the labels of those volumes, for
// tapir check and tapir tape next --explain to say.
func lookAhead(ctx context.Context, cat *catalog.Catalog, v *volumes, pdles []planner.DLE) ([]planner.DLE, []string, error) {
	reuse, err := v.reuseAtRisk(ctx)
	if err != nil || len(reuse) == 0 {
		return nil, reuse, err
	}
	chains, err := cat.Chains(ctx)
	if err != nil {
		return nil, reuse, err
	}
	marked := markChainsAtRisk(pdles, chains, reuse)
	var out []planner.DLE
	for _, d := range pdles {
		if slices.Contains(marked, d.Name()) {
			out = append(out, d)
		}
	}
	return out, reuse, nil
}

// PlanTonight asks the agents for estimates and plans tonight's run,
// without dumping anything (`tapir plan --explain`). It reads the catalog
// but does not take the run lock.
func PlanTonight(ctx context.Context, cfg *config.Config, deps Deps) (*planner.Schedule, error) {
	if deps.Clock == nil {
		deps.Clock = clock.Real
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	pdles, err := plannerDLEs(ctx, cat, cfg)
	if err != nil {
		return nil, err
	}
	var lookErr error
	degraded := ""
	if ch, err := openChanger(cfg, deps, deps.Log); err != nil {
		lookErr = err
		degraded = err.Error() // the run cannot open it either (setup)
	} else {
		v := &volumes{cfg: cfg, cat: cat, ch: ch, clock: deps.Clock, log: deps.Log, notes: func(string) {}}
		_, _, lookErr = lookAhead(ctx, cat, v, pdles)
		// What the run's setup asks (volumes.probe), without waiting for
		// a person: with no usable volume the night will be degraded.
		if _, err := v.choose(ctx); err != nil {
			degraded = noVolumeWhy(err)
		}
		closeChanger(ch)
	}
	now := deps.Clock.Now().In(cfg.Location())
	files := wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}
	_, errs := estimates(ctx, cfg, files, now.Format("20060102150405"), pdles, now, deps.Log)
	sched, err := planner.Plan(plannerConfig(cfg), pdles, now)
	if err != nil {
		return nil, err
	}
	sched.Degraded = degraded
	for i, e := range errs {
		sched.Notes = append(sched.Notes, fmt.Sprintf("%s:%s: estimate failed: %v", pdles[i].Host, pdles[i].Path, e))
	}
	if lookErr != nil {
		sched.Notes = append(sched.Notes, fmt.Sprintf("the look-ahead for chains could not read the volumes, so no full is promoted for them in this plan: %v", lookErr))
	}
	return sched, nil
}

// WriteDue writes `tapir admin due`: days until each DLE's next full.
func WriteDue(ctx context.Context, w io.Writer, cfg *config.Config, clk clock.Clock) error {
	return withPlannerDLEs(ctx, cfg, clk, func(pc planner.Config, dles []planner.DLE, now time.Time) error {
		r, err := planner.Due(pc, dles, now)
		if err != nil {
			return err
		}
		return r.Write(w)
	})
}

// WriteBalance writes `tapir admin balance`: the expected full sizes per
// day of the coming cycle.
func WriteBalance(ctx context.Context, w io.Writer, cfg *config.Config, clk clock.Clock) error {
	return withPlannerDLEs(ctx, cfg, clk, func(pc planner.Config, dles []planner.DLE, now time.Time) error {
		r, err := planner.Balance(pc, dles, now)
		if err != nil {
			return err
		}
		return r.Write(w)
	})
}

func withPlannerDLEs(ctx context.Context, cfg *config.Config, clk clock.Clock, fn func(planner.Config, []planner.DLE, time.Time) error) error {
	clk = clock.Or(clk)
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return err
	}
	defer cat.Close()
	dles, err := plannerDLEs(ctx, cat, cfg)
	if err != nil {
		return err
	}
	return fn(plannerConfig(cfg), dles, clk.Now().In(cfg.Location()))
}

// Force sets (on) or clears the force flag of the DLEs of host (all of
// them when path is ""), so that the next run dumps them at level 0 (`tapir
// admin force|unforce`). It returns the DLEs changed; a host or path that
// is not in the disk list is an error.
func Force(ctx context.Context, cfg *config.Config, host, path string, on bool) ([]config.DLE, error) {
	var sel []config.DLE
	for _, d := range cfg.DLEs {
		if d.Host == host && (path == "" || d.Path == path) {
			sel = append(sel, d)
		}
	}
	if len(sel) == 0 {
		what := "host " + host
		if path != "" {
			what = fmt.Sprintf("DLE %s:%s", host, path)
		}
		return nil, fmt.Errorf("%s is not in the disk list of %s; `tapir config check -c %s` lists the DLEs", what, cfg.File, cfg.File)
	}
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	for _, d := range sel {
		if err := cat.SetForce(ctx, d.Host, d.Path, on); err != nil {
			return nil, err
		}
	}
	return sel, nil
}
