package client

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/wire"
)

// TestResumeStateUnkeptWarnsAfterReply: when the resume state of a dump
// cannot be kept, the agent says so in a warning, and that warning comes
// after the Reply (a W frame first was a protocol error that failed the
// dump: seen in CI with two dumps at once on one agent).
func TestResumeStateUnkeptWarnsAfterReply(t *testing.T) {
	state := t.TempDir()
	// "resume" a file: no resume directory can be made below it.
	must(t, os.WriteFile(filepath.Join(state, "resume"), []byte("not a directory"), 0o600))
	dle := t.TempDir()
	writeAt(t, filepath.Join(dle, "a.txt"), "alpha", time.Now())
	r := agentPairWith(t, func(a *Agent) { a.StateDir = state })
	res := remoteDump(t, r, wire.Request{DLE: dle, Datestamp: "20260102030405", Compress: "none", Token: "0123456789abcdef0123456789abcdef"})
	if res.err != nil {
		t.Fatalf("dump: %v", res.err)
	}
	if res.done == nil || res.done.Error != "" {
		t.Fatalf("done %+v", res.done)
	}
	if !strings.Contains(strings.Join(res.warnings, "\n"), "resume state of this dump cannot be kept") {
		t.Errorf("warnings %q", res.warnings)
	}
}

// TestRemoveStaleResumeSparesDumpsBeingCreated: a resume directory whose
// request.json is absent, empty or half written may be another dump's
// being created: it stays unless old. One of the same DLE, or old, goes.
func TestRemoveStaleResumeSparesDumpsBeingCreated(t *testing.T) {
	state := t.TempDir()
	now := time.Now()
	mk := func(tok, content string, age time.Duration) string {
		d := resumeDir(state, tok)
		must(t, os.MkdirAll(d, 0o700))
		if content != "-" {
			must(t, os.WriteFile(filepath.Join(d, "request.json"), []byte(content), 0o600))
		}
		must(t, os.Chtimes(d, now.Add(-age), now.Add(-age)))
		return d
	}
	tok := func(i int) string { return fmt.Sprintf("%032x", i) }
	keep := []string{
		mk(tok(1), "", 0),                 // being written (old writer truncated first)
		mk(tok(2), `{"DLE":"/o`, 0),       // half written
		mk(tok(3), "-", 0),                // directory made, file not yet
		mk(tok(4), `{"DLE":"/other"}`, 0), // another DLE's
		mk(tok(9), `{"DLE":"/mine"}`, 0),  // the dump's own token
	}
	gone := []string{
		mk(tok(5), `{"DLE":"/mine"}`, 0),             // same DLE, earlier dump
		mk(tok(6), "", 2*time.Hour),                  // junk, old
		mk(tok(7), "-", 2*time.Hour),                 // half made, old
		mk(tok(8), `{"DLE":"/other"}`, 3*ResumeKeep), // past keeping
	}
	removeStaleResume(state, "/mine", tok(9), now)
	for _, d := range keep {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(d), err)
		}
	}
	for _, d := range gone {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s kept", filepath.Base(d))
		}
	}
}

// TestConcurrentJournalsSurvive: dumps of different DLEs starting at once
// on one agent (each cleaning stale state, then opening its journal)
// never remove each other's state.
func TestConcurrentJournalsSurvive(t *testing.T) {
	state := t.TempDir()
	const dumps, rounds = 8, 40
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, dumps)
		for i := range dumps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := fmt.Sprintf("%016x%016x", round, i)
				req := wire.Request{Op: wire.OpDump, DLE: fmt.Sprintf("/dle/%d", i), Token: tok}
				removeStaleResume(state, req.DLE, tok, time.Now())
				j, err := openJournal(resumeDir(state, tok), req, nil)
				if err != nil {
					errs <- fmt.Errorf("round %d dump %d: %v", round, i, err)
					return
				}
				j.close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := range dumps {
			tok := fmt.Sprintf("%016x%016x", round, i)
			if _, err := os.Stat(filepath.Join(resumeDir(state, tok), "request.json")); err != nil {
				t.Fatalf("round %d dump %d: its state was removed: %v", round, i, err)
			}
		}
	}
}
