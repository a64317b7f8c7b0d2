package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Status of one DLE in a run.
const (
	StatusOK      = "OK"      // safe on a volume
	StatusStrange = "STRANGE" // safe on a volume, but the dump printed lines worth reading
	StatusFailed  = "FAILED"  // not saved tonight: neither on a volume nor on the holding disk
	StatusHolding = "HOLDING" // dumped, safe on the holding disk only (not, or not wholly, on a volume)
	StatusSkipped = "SKIPPED" // not dumped tonight on purpose (configuration or operator)
	StatusDelayed = "DELAYED" // not dumped tonight: the planner could not fit it
)

// Kind of run.
const (
	KindDump  = "dump"  // a nightly run (with autoflush, it flushes leftovers first)
	KindFlush = "flush" // tapir flush: only leftovers of earlier runs
)

// Run status as recorded in the catalog (see Run.Status).
const (
	RunOK       = "ok"
	RunStrange  = "strange"
	RunDegraded = "degraded"
	RunFailed   = "failed"
)

// Run is everything the report says about one run.
type Run struct {
	Org       string
	Server    string // the tapir server's [server] name; shown when it is not Org (servers sharing a catalog)
	Config    string // the configuration file
	Hostname  string // the backup server's host name
	Datestamp string // the run's name, YYYYMMDDhhmmss, in the configuration's time zone
	Kind      string // KindDump or KindFlush; "" is KindDump
	Start     time.Time
	End       time.Time

	// Wall-clock time of each phase (not sums over DLEs).
	EstimateTime time.Duration
	DumpTime     time.Duration
	TapeTime     time.Duration

	Volumes     []Volume // volumes written, in order
	NextVolumes []string // what the next run expects, in words, in order of use
	// NextVolume is one expected volume, in words.
	//
	// Deprecated: use NextVolumes; a non-empty NextVolume is rendered as
	// the first of NextVolumes.
	NextVolume string

	Degraded *Degraded // nil unless the run could use no volume
	Aborted  string    // why the run stopped before its end; "" when it ran to the end
	// Refused lists the volumes the run refused to overwrite because each
	// holds a DLE's newest restorable chain (promise 7), with the chains:
	// the run needed them and did not get them, so it failed.
	Refused []string

	// Problems are what the run found wrong outside its DLEs' own
	// outcome and left for a person: holding images damaged or lost (kept
	// for inspection, never taped), a holding disk that does not exist,
	// tape files a failed write left on a volume (recorded as failed).
	// Where names the thing (a path, "volume T-001 file 3"), What says
	// what is wrong and what to do. Any of them makes the run at least
	// strange: such a night is never ok.
	Problems []Problem

	DLEs      []DLE
	Preflight []Problem // what the check at the start of the run found; listed first in NOTES
	Notes     []string  // one line each, "source: text" by convention (planner:, holding:, lock:, taper:)
}

// Degraded says what a run without a usable volume did.
type Degraded struct {
	Reason   string // why no volume was usable, one line
	Expected string // the volume(s) the run expected, in words
	Insert   string // the volume to insert before the next run, in words
}

// Volume is one volume written by the run.
type Volume struct {
	Label  string
	Drive  string // the drive that wrote it, with several: "drive 1 (/dev/nst1)"; "" with one
	Slot   int    // 0 when the changer has no slots
	New    bool   // labelled by this run
	Files  int    // tape files written after the label; one per part
	Bytes  int64  // payload bytes written
	Length int64  // the volume's capacity (tapetype length); 0 = unknown
	Time   time.Duration
	// Starved is the time the drive waited for data in the middle of the
	// images it wrote on this volume (the dumper had not yet written the
	// bytes of an image taped while it was dumped, or of one streamed
	// straight to the volume): the time a real drive stops and
	// repositions. 0 when the holding disk fed it.
	Starved time.Duration
}

// DLE is the outcome of one DLE (or of one flushed image) in the run.
type DLE struct {
	Host, Path string
	Level      int
	Status     string
	Reason     string    // why it failed, is on holding only, was delayed or skipped (one line)
	Strange    []string  // the lines of the dump that made it strange (or the output of a failed one)
	Retries    []Attempt // earlier attempts of this run that failed, in order
	// Resumes are the cuts of the stream that the dump continued after
	// (resume_attempts), in order, in its last attempt.
	Resumes []Resume
	Demoted string // why the planned full became this incremental; "" when it did not
	// Warnings are what a person should know about the DLE although its
	// image is fine, one line each: the age recipients changed since its
	// last full (restoring the chain needs the old keys too).
	Warnings []string
	// Hooks are the commands the agent ran for the dump (pre and post
	// hooks, the snapshot's creation and removal, a command DLE's
	// command), failed or not, in order.
	Hooks []Hook
	// Snapshot names the snapshot the image was read from ("btrfs
	// /data/.tapir-snapshot-…"); "" when it was read live.
	Snapshot string
	Flushed  string // datestamp of the earlier run that dumped it; "" when dumped by this run
	Files    int64
	OrigSize int64 // tar bytes
	OutSize  int64 // payload bytes (after compression)
	DumpTime time.Duration
	TapeTime time.Duration
	// Streamed: the taper began writing the image while it was still
	// being dumped to the holding disk.
	Streamed bool
	// Starved is the time the drive waited for this image's data after
	// its first byte (see Volume.Starved); TapeTime includes it.
	Starved time.Duration
	Parts   []Part // where the image is, in part order
	// Volume and FileNo place a one-part image.
	//
	// Deprecated: use Parts; they are read only when Parts is empty.
	Volume string
	FileNo int64
}

// Resume is one cut of a dump's stream that the dump continued after:
// the frames the server held (Frames, Bytes of payload), the bytes that
// had reached the server past them and were dropped (Resent; the agent
// sends them again), and how many the agent had written into the
// connection past them (AgentSent, which counts what the kernels' socket
// buffers held when the connection died; -1 when the agent does not know,
// as after a restart).
type Resume struct {
	Level     int
	Frames    int64
	Bytes     int64
	Resent    int64
	AgentSent int64
	Reason    string
}

// Hook is one command the agent ran for a dump (wire.HookRun).
type Hook struct {
	Name    string // "pre", "post", "snapshot-create", "snapshot-remove", "command"
	Command string
	Exit    int // -1: did not start, killed at its timeout or cancelled (Error)
	Seconds float64
	Output  string // the tail of what it printed
	Error   string
}

// OK says the command succeeded.
func (h Hook) OK() bool { return h.Exit == 0 && h.Error == "" }

// Attempt is one failed attempt at dumping a DLE that was retried.
type Attempt struct {
	Level  int
	Reason string
}

// Part is one piece of an image on one volume.
type Part struct {
	Volume string
	FileNo int64 // tape file number on the volume
	Part   int   // 1-based
	Bytes  int64
}

// Failed reports whether the run failed: a DLE failed, or the run was
// aborted (nothing more could be saved).
func (r *Run) Failed() bool {
	if r.Aborted != "" || len(r.Refused) > 0 {
		return true
	}
	for _, d := range r.DLEs {
		if d.Status == StatusFailed {
			return true
		}
	}
	return false
}

// Strange reports whether the run needs a look although nothing failed: a
// DLE is strange, left on the holding disk only, or delayed, the run was
// degraded, or it found problems (Problems).
func (r *Run) Strange() bool {
	if r.Degraded != nil || len(r.Problems) > 0 {
		return true
	}
	for _, d := range r.DLEs {
		switch d.Status {
		case StatusStrange, StatusHolding, StatusDelayed:
			return true
		}
	}
	return false
}

// Status is the run's status for the catalog: RunFailed, RunDegraded,
// RunStrange or RunOK, in that order of precedence.
func (r *Run) Status() string {
	switch {
	case r.Failed():
		return RunFailed
	case r.Degraded != nil:
		return RunDegraded
	case r.Strange():
		return RunStrange
	}
	return RunOK
}

// Subject is the mail subject and the first line of the text:
// "<org> [FAIL: |STRANGE: ]TAPIR MAIL REPORT FOR <Month d, yyyy>".
func (r *Run) Subject() string {
	flag := ""
	switch {
	case r.Failed():
		flag = "FAIL: "
	case r.Strange():
		flag = "STRANGE: "
	}
	who := clean(r.Org)
	if r.Server != "" && r.Server != r.Org {
		who += " " + clean(r.Server)
	}
	return fmt.Sprintf("%s %sTAPIR MAIL REPORT FOR %s", who, flag, r.date().Format("January 2, 2006"))
}

// date is the day the run is named after: its datestamp (in the
// configuration's time zone), else its start.
func (r *Run) date() time.Time {
	if t, err := time.Parse("20060102150405", r.Datestamp); err == nil {
		return t
	}
	return r.Start
}

// WriteTo writes the text report.
func (r *Run) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, r.Text())
	return int64(n), err
}

// normalized returns a copy in the form both renderings use: deprecated
// fields folded in, durations rounded to the millisecond (what JSON keeps),
// monotonic clock readings dropped, invalid UTF-8 spelled out as \xNN. So
// ParseJSON(r.JSON()) renders exactly as r does.
func (r *Run) normalized() *Run {
	n := *r
	n.Org, n.Config, n.Hostname, n.Datestamp, n.Server = valid(r.Org), valid(r.Config), valid(r.Hostname), valid(r.Datestamp), valid(r.Server)
	if n.Kind == "" {
		n.Kind = KindDump
	}
	n.Kind = valid(n.Kind)
	n.Start, n.End = r.Start.Round(0), r.End.Round(0)
	n.EstimateTime, n.DumpTime, n.TapeTime = msec(r.EstimateTime), msec(r.DumpTime), msec(r.TapeTime)
	n.NextVolumes = nil
	if r.NextVolume != "" {
		n.NextVolumes = append(n.NextVolumes, valid(r.NextVolume))
	}
	for _, v := range r.NextVolumes {
		n.NextVolumes = append(n.NextVolumes, valid(v))
	}
	n.NextVolume = ""
	if r.Degraded != nil {
		n.Degraded = &Degraded{Reason: valid(r.Degraded.Reason), Expected: valid(r.Degraded.Expected), Insert: valid(r.Degraded.Insert)}
	}
	n.Aborted = valid(r.Aborted)
	n.Refused = nil
	for _, x := range r.Refused {
		n.Refused = append(n.Refused, valid(x))
	}
	n.Volumes = make([]Volume, len(r.Volumes))
	for i, v := range r.Volumes {
		v.Label, v.Drive = valid(v.Label), valid(v.Drive)
		v.Time, v.Starved = msec(v.Time), msec(v.Starved)
		n.Volumes[i] = v
	}
	n.DLEs = make([]DLE, len(r.DLEs))
	for i, d := range r.DLEs {
		d.Host, d.Path, d.Status, d.Reason = valid(d.Host), valid(d.Path), valid(d.Status), valid(d.Reason)
		d.Demoted, d.Flushed = valid(d.Demoted), valid(d.Flushed)
		d.Warnings = validAll(d.Warnings)
		d.Strange = validAll(d.Strange)
		d.Snapshot = valid(d.Snapshot)
		d.Hooks = nil
		for _, h := range r.DLEs[i].Hooks {
			h.Name, h.Command, h.Output, h.Error = valid(h.Name), valid(h.Command), valid(h.Output), valid(h.Error)
			d.Hooks = append(d.Hooks, h)
		}
		d.Retries = nil
		for _, a := range r.DLEs[i].Retries {
			d.Retries = append(d.Retries, Attempt{Level: a.Level, Reason: valid(a.Reason)})
		}
		d.DumpTime, d.TapeTime, d.Starved = msec(d.DumpTime), msec(d.TapeTime), msec(d.Starved)
		d.Parts = nil
		for _, p := range r.DLEs[i].Parts {
			p.Volume = valid(p.Volume)
			d.Parts = append(d.Parts, p)
		}
		if len(d.Parts) == 0 && r.DLEs[i].Volume != "" {
			d.Parts = []Part{{Volume: valid(r.DLEs[i].Volume), FileNo: r.DLEs[i].FileNo, Part: 1, Bytes: r.DLEs[i].OutSize}}
		}
		d.Volume, d.FileNo = "", 0
		n.DLEs[i] = d
	}
	n.Preflight = validProblems(r.Preflight)
	n.Problems = validProblems(r.Problems)
	n.Notes = validAll(r.Notes)
	return &n
}

func validProblems(ps []Problem) []Problem {
	var out []Problem
	for _, p := range ps {
		out = append(out, Problem{Where: valid(p.Where), What: valid(p.What)})
	}
	return out
}

func msec(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// seconds is d in seconds, to the millisecond, for JSON.
func seconds(d time.Duration) float64 { return float64(msec(d).Milliseconds()) / 1000 }

// fromSeconds is the inverse of seconds.
func fromSeconds(s float64) time.Duration {
	return time.Duration(math.Round(s*1000)) * time.Millisecond
}

// valid spells every byte of s that is not valid UTF-8 as \xNN, so that a
// string survives JSON unchanged and renders the same before and after.
func valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func validAll(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = valid(s)
	}
	return out
}

// clean makes s safe to print on one line of the report: control
// characters (a newline in a file name, an escape sequence in a tool's
// output) and invalid UTF-8 are spelled out, never passed through.
func clean(s string) string {
	s = valid(s)
	ok := true
	for _, r := range s {
		if isControl(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case isControl(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0xfeff
}
