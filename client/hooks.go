package client

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tapir-backup/tapir/wire"
)

// A dump's events, in order (docs/format/agent-protocol.md, "Hooks,
// snapshots and command DLEs"): the Reply; the pre hook; the snapshot;
// the walk (or the command DLE's command); the snapshot's removal; the
// post hook (with TAPIR_RESULT); Done, which lists every command run.
// Once the pre hook started (or when there is none), the removal and the
// post hook run whatever happened before them, a cut connection
// included: they are not cancelled with the dump, only bounded by the
// hook timeout.

// session is what a dump ran and must still undo.
type session struct {
	a       *Agent
	req     wire.Request
	timeout time.Duration
	warn    func(string)
	runs    []wire.HookRun
	dropped int
	snap    *snapshot
	gone    bool // snap was removed (its name stays for Done)
}

func (a *Agent) newSession(req wire.Request, warn func(string)) *session {
	return &session{a: a, req: req, timeout: hookTimeout(req), warn: warn}
}

// hookTimeout is the bound of each hook and snapshot tool of req.
func hookTimeout(req wire.Request) time.Duration {
	if req.HookTimeout <= 0 {
		return DefaultHookTimeout
	}
	return time.Duration(req.HookTimeout) * time.Second
}

// record keeps a run for Done (at most wire.MaxHookRuns).
func (s *session) record(r wire.HookRun) {
	if len(s.runs) >= wire.MaxHookRuns {
		s.dropped++
		s.a.Log.Warn("command run not reported: a dump reports at most MaxHookRuns", "dle", s.req.DLE, "name", r.Name, "command", r.Command, "exit", r.Exit)
		return
	}
	s.runs = append(s.runs, r)
}

// env is the environment of a hook or command of this dump.
func (s *session) env(hook string) []string {
	e := []string{"TAPIR_DLE=" + s.req.DLE, "TAPIR_LEVEL=" + strconv.Itoa(s.req.Level), "TAPIR_DATESTAMP=" + s.req.Datestamp, "TAPIR_HOOK=" + hook}
	if s.snap != nil && !s.gone {
		e = append(e, "TAPIR_SNAPSHOT_ID="+s.snap.l.ID, "TAPIR_SNAPSHOT_DIR="+s.snap.dir)
	}
	return e
}

// pre runs the pre hook, if any; its failure fails the dump.
func (s *session) pre(ctx context.Context) error {
	if len(s.req.Pre) == 0 {
		return nil
	}
	p, err := checkArgv("pre hook", s.req.Pre, s.a.AllowExec)
	if err != nil {
		return err
	}
	r, err := runExec(ctx, execSpec{name: "pre", what: "pre hook", path: p, argv: s.req.Pre, env: s.env("pre"), timeout: s.timeout})
	s.record(r)
	if err != nil {
		return fmt.Errorf("%v: the dump of %s did not start", err, s.req.DLE)
	}
	return nil
}

// snapshot makes the snapshot the request asks for.
func (s *session) snapshot(ctx context.Context) error {
	if s.req.Snapshot == nil {
		return nil
	}
	sn, err := s.a.makeSnapshot(ctx, s.req, s.timeout, s.record, s.warn)
	if err != nil {
		return err
	}
	s.snap = sn
	return nil
}

// end removes the snapshot and runs the post hook, neither cancelled by
// ctx (the dump's, which a cut connection cancels); a failure of either
// is a warning (the dump is STRANGE). ok says whether the dump succeeded
// so far.
func (s *session) end(ok bool) {
	if s.snap != nil {
		if err := s.a.dropSnapshot(s.snap, s.timeout, s.record); err != nil {
			s.warn(err.Error())
			s.a.Log.Warn("snapshot not removed", "dle", s.req.DLE, "snapshot", s.snap.name, "err", err)
		}
		s.gone = true
	}
	if len(s.req.Post) == 0 {
		return
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	p, err := checkArgv("post hook", s.req.Post, s.a.AllowExec)
	if err == nil {
		var r wire.HookRun
		r, err = runExec(context.Background(), execSpec{name: "post", what: "post hook", path: p, argv: s.req.Post,
			env: append(s.env("post"), "TAPIR_RESULT="+result), timeout: s.timeout})
		s.record(r)
	}
	if err != nil {
		s.warn(fmt.Sprintf("%v (after the dump of %s, which %s)", err, s.req.DLE, map[bool]string{true: "succeeded", false: "failed"}[ok]))
	}
}

// done fills a Done's hook fields.
func (s *session) done(d *wire.Done) {
	if s == nil {
		return
	}
	d.Hooks = s.runs
	if s.snap != nil {
		d.Snapshot = s.snap.name
	}
}
