package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/config"
)

// CancelRequest is what `tapir status --cancel` leaves for the run in
// progress: which run to cancel, and who asked. The run looks for it
// before every dump it starts and with every refresh of its status (once
// a second), then ends as on SIGTERM to the server: no new dump starts,
// the dumps in flight finish onto the holding disk, the taper finishes
// the image it writes, and the report says who cancelled the night.
type CancelRequest struct {
	Datestamp string    `json:"datestamp"` // the run to cancel; a request for another run is ignored
	By        string    `json:"by"`        // "user alice on backup1 (pid 4242)"
	At        time.Time `json:"at"`
}

// CancelFile is where a CancelRequest for the runs of cfg is written:
// beside the status file.
func CancelFile(cfg *config.Config) string {
	return strings.TrimSuffix(StatusFile(cfg), ".json") + ".cancel.json"
}

// ErrNoRun is returned by Cancel when no run of the configuration is in
// progress on this host.
var ErrNoRun = errors.New("no run in progress")

// Cancel asks the run of cfg in progress to end (a CancelRequest). It
// fails when no run is in progress on this host: none published a live
// status, or the run lock is free (the process that published it is
// gone). It returns the status of the run it asked.
func Cancel(cfg *config.Config, now time.Time) (*Status, error) {
	st, live, err := ReadStatus(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRun, err)
	}
	host, _ := os.Hostname()
	switch {
	case st.Phase == "done":
		return nil, fmt.Errorf("%w: the last run of %s, %s, has ended (%s)", ErrNoRun, cfg.File, st.Datestamp, st.Result)
	case st.Host != host:
		return nil, fmt.Errorf("%w on this host: run %s of %s runs on %s (pid %d); cancel it there", ErrNoRun, st.Datestamp, cfg.File, st.Host, st.PID)
	case !live || !lockHeld(lockPath(cfg)):
		return nil, fmt.Errorf("%w: run %s of %s (pid %d) died without finishing; the next run cleans up after it", ErrNoRun, st.Datestamp, cfg.File, st.PID)
	}
	who := "unknown user"
	if u, err := user.Current(); err == nil {
		who = "user " + u.Username
	}
	req := CancelRequest{Datestamp: st.Datestamp, By: fmt.Sprintf("%s on %s (pid %d)", who, host, os.Getpid()), At: now}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	p := CancelFile(cfg)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", st.Datestamp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("cancel run %s: %w", st.Datestamp, err)
	}
	return st, nil
}

// cancelRequested returns the request to cancel run datestamp, nil when
// there is none (or it is for another run, or unreadable).
func cancelRequested(cfg *config.Config, datestamp string) *CancelRequest {
	b, err := os.ReadFile(CancelFile(cfg))
	if err != nil {
		return nil
	}
	var req CancelRequest
	if json.Unmarshal(b, &req) != nil || req.Datestamp != datestamp {
		return nil
	}
	req.By = oneLine(req.By)
	return &req
}

// dropCancel removes a request to cancel run datestamp once the run has
// ended, so that it does not outlive the run it was meant for.
func dropCancel(cfg *config.Config, datestamp string) {
	if cancelRequested(cfg, datestamp) != nil {
		os.Remove(CancelFile(cfg))
	}
	os.Remove(CancelFile(cfg) + ".tmp")
}
