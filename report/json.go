package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"
)

// JSONVersion is the version of the JSON schema JSON writes. Fields may be
// added within a version; a reader ignores fields it does not know.
// Removing or changing the meaning of a field makes a new version, and
// ParseJSON refuses versions newer than its own.
const JSONVersion = 1

// The JSON schema (docs/format/report.md). Every field is always written:
// strings may be "", lists are [] (never null); "degraded" is null when
// the run was not degraded. Times are RFC 3339, durations are seconds (to
// the millisecond), sizes are bytes.
type jsonRun struct {
	Version         int           `json:"version"`
	Subject         string        `json:"subject"` // derived, ignored on read
	Status          string        `json:"status"`  // derived, ignored on read
	Org             string        `json:"org"`
	Server          string        `json:"server,omitempty"`
	Config          string        `json:"config"`
	Hostname        string        `json:"hostname"`
	Datestamp       string        `json:"datestamp"`
	Kind            string        `json:"kind"`
	Start           *string       `json:"start"`
	End             *string       `json:"end"`
	EstimateSeconds float64       `json:"estimate_seconds"`
	DumpSeconds     float64       `json:"dump_seconds"`
	TapeSeconds     float64       `json:"tape_seconds"`
	Aborted         string        `json:"aborted"`
	Degraded        *jsonDegr     `json:"degraded"`
	Refused         []string      `json:"refused"`
	Problems        []jsonProblem `json:"problems"`
	Volumes         []jsonVolume  `json:"volumes"`
	NextVolumes     []string      `json:"next_volumes"`
	DLEs            []jsonDLE     `json:"dles"`
	Preflight       []jsonProblem `json:"preflight"`
	Notes           []string      `json:"notes"`
}

type jsonProblem struct {
	Where string `json:"where"`
	What  string `json:"what"`
}

type jsonDegr struct {
	Reason   string `json:"reason"`
	Expected string `json:"expected"`
	Insert   string `json:"insert"`
}

type jsonVolume struct {
	Label   string  `json:"label"`
	Drive   string  `json:"drive,omitempty"`
	Slot    int     `json:"slot"`
	New     bool    `json:"new"`
	Files   int     `json:"files"`
	Bytes   int64   `json:"bytes"`
	Length  int64   `json:"length"`
	Seconds float64 `json:"seconds"`
	Starved float64 `json:"starved_seconds"`
}

type jsonDLE struct {
	Host        string        `json:"host"`
	Path        string        `json:"path"`
	Level       int           `json:"level"`
	Status      string        `json:"status"`
	Reason      string        `json:"reason"`
	Strange     []string      `json:"strange"`
	Retries     []jsonAttempt `json:"retries"`
	Resumes     []jsonResume  `json:"resumes,omitempty"`
	Demoted     string        `json:"demoted"`
	Warnings    []string      `json:"warnings,omitempty"`
	FlushedFrom string        `json:"flushed_from"`
	Files       int64         `json:"files"`
	OrigBytes   int64         `json:"orig_bytes"`
	OutBytes    int64         `json:"out_bytes"`
	DumpSeconds float64       `json:"dump_seconds"`
	TapeSeconds float64       `json:"tape_seconds"`
	Streamed    bool          `json:"streamed"`
	Starved     float64       `json:"starved_seconds"`
	Parts       []jsonPart    `json:"parts"`
	Snapshot    string        `json:"snapshot,omitempty"`
	Hooks       []jsonHook    `json:"hooks,omitempty"`
}

type jsonHook struct {
	Name    string  `json:"name"`
	Command string  `json:"command"`
	Exit    int     `json:"exit"`
	Seconds float64 `json:"seconds"`
	Output  string  `json:"output,omitempty"`
	Error   string  `json:"error,omitempty"`
}

type jsonResume struct {
	Level  int    `json:"level"`
	Frames int64  `json:"frames"`
	Bytes  int64  `json:"bytes"`
	Resent int64  `json:"resent_bytes"`
	Agent  int64  `json:"agent_sent_bytes"`
	Reason string `json:"reason"`
}

type jsonAttempt struct {
	Level  int    `json:"level"`
	Reason string `json:"reason"`
}

type jsonPart struct {
	Volume string `json:"volume"`
	File   int64  `json:"file"`
	Part   int    `json:"part"`
	Bytes  int64  `json:"bytes"`
}

// JSON renders the report as indented JSON, ending in a newline: the same
// facts as Text for machines, and the form the catalog keeps (Render and
// ParseJSON read it back).
func (r *Run) JSON() ([]byte, error) {
	n := r.normalized()
	j := jsonRun{
		Version: JSONVersion, Subject: n.Subject(), Status: n.Status(),
		Org: n.Org, Server: n.Server, Config: n.Config, Hostname: n.Hostname, Datestamp: n.Datestamp, Kind: n.Kind,
		Start: timePtr(n.Start), End: timePtr(n.End),
		EstimateSeconds: seconds(n.EstimateTime), DumpSeconds: seconds(n.DumpTime), TapeSeconds: seconds(n.TapeTime),
		Aborted: n.Aborted, Refused: nonNil(n.Refused), Volumes: []jsonVolume{}, NextVolumes: nonNil(n.NextVolumes), DLEs: []jsonDLE{}, Preflight: []jsonProblem{}, Notes: nonNil(n.Notes),
	}
	for _, p := range n.Preflight {
		j.Preflight = append(j.Preflight, jsonProblem{Where: p.Where, What: p.What})
	}
	j.Problems = []jsonProblem{}
	for _, p := range n.Problems {
		j.Problems = append(j.Problems, jsonProblem{Where: p.Where, What: p.What})
	}
	if d := n.Degraded; d != nil {
		j.Degraded = &jsonDegr{Reason: d.Reason, Expected: d.Expected, Insert: d.Insert}
	}
	for _, v := range n.Volumes {
		j.Volumes = append(j.Volumes, jsonVolume{Label: v.Label, Drive: v.Drive, Slot: v.Slot, New: v.New, Files: v.Files, Bytes: v.Bytes, Length: v.Length, Seconds: seconds(v.Time), Starved: seconds(v.Starved)})
	}
	for _, d := range n.DLEs {
		jd := jsonDLE{Host: d.Host, Path: d.Path, Level: d.Level, Status: d.Status, Reason: d.Reason,
			Strange: nonNil(d.Strange), Retries: []jsonAttempt{}, Demoted: d.Demoted, FlushedFrom: d.Flushed,
			Warnings: d.Warnings, Files: d.Files, OrigBytes: d.OrigSize, OutBytes: d.OutSize,
			DumpSeconds: seconds(d.DumpTime), TapeSeconds: seconds(d.TapeTime), Streamed: d.Streamed, Starved: seconds(d.Starved), Parts: []jsonPart{}}
		for _, a := range d.Retries {
			jd.Retries = append(jd.Retries, jsonAttempt{Level: a.Level, Reason: a.Reason})
		}
		jd.Snapshot = d.Snapshot
		for _, h := range d.Hooks {
			jd.Hooks = append(jd.Hooks, jsonHook{Name: h.Name, Command: h.Command, Exit: h.Exit, Seconds: h.Seconds, Output: h.Output, Error: h.Error})
		}
		for _, rs := range d.Resumes {
			jd.Resumes = append(jd.Resumes, jsonResume{Level: rs.Level, Frames: rs.Frames, Bytes: rs.Bytes, Resent: rs.Resent, Agent: rs.AgentSent, Reason: rs.Reason})
		}
		for _, p := range d.Parts {
			jd.Parts = append(jd.Parts, jsonPart{Volume: p.Volume, File: p.FileNo, Part: p.Part, Bytes: p.Bytes})
		}
		j.DLEs = append(j.DLEs, jd)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return nil, fmt.Errorf("report of run %s: encode JSON: %w", n.Datestamp, err)
	}
	return b.Bytes(), nil
}

func timePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.Format(time.RFC3339Nano)
	return &s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// maxSeconds bounds every duration read back (about 31 years): beyond it
// a time.Duration would overflow.
const maxSeconds = 1e9

var (
	datestampRe = regexp.MustCompile(`^[0-9]{14}$`)
	statuses    = []string{StatusOK, StatusStrange, StatusFailed, StatusHolding, StatusSkipped, StatusDelayed}
)

// ParseJSON reads a report written by Run.JSON. Every value is checked; an
// error names the field ("dles[3].status: ...") and what was expected.
func ParseJSON(b []byte) (*Run, error) {
	var j jsonRun
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("report JSON: %w", jsonError(err))
	}
	if dec.More() {
		return nil, errors.New("report JSON: more than one JSON value; a report is one object")
	}
	p := &parser{}
	if j.Version < 1 {
		p.fail("version", "missing or not a positive number (a report written by tapir has \"version\": %d)", JSONVersion)
	} else if j.Version > JSONVersion {
		return nil, fmt.Errorf("report JSON: version %d is newer than this tapir understands (%d): use a newer tapir to read it", j.Version, JSONVersion)
	}
	r := &Run{
		Org: j.Org, Server: j.Server, Config: j.Config, Hostname: j.Hostname, Datestamp: j.Datestamp, Kind: j.Kind,
		Aborted: j.Aborted, NextVolumes: j.NextVolumes, Notes: j.Notes,
	}
	if !datestampRe.MatchString(j.Datestamp) {
		p.fail("datestamp", "%q is not YYYYMMDDhhmmss", j.Datestamp)
	}
	if j.Kind != KindDump && j.Kind != KindFlush {
		p.fail("kind", "%q is neither %q nor %q", j.Kind, KindDump, KindFlush)
	}
	r.Start = p.time("start", j.Start)
	r.End = p.time("end", j.End)
	r.EstimateTime = p.dur("estimate_seconds", j.EstimateSeconds)
	r.DumpTime = p.dur("dump_seconds", j.DumpSeconds)
	r.TapeTime = p.dur("tape_seconds", j.TapeSeconds)
	if d := j.Degraded; d != nil {
		r.Degraded = &Degraded{Reason: d.Reason, Expected: d.Expected, Insert: d.Insert}
	}
	if len(j.Refused) > 0 {
		r.Refused = j.Refused
	}
	for i, v := range j.Volumes {
		f := fmt.Sprintf("volumes[%d]", i)
		if v.Label == "" {
			p.fail(f+".label", "empty")
		}
		p.nonNeg(f+".slot", int64(v.Slot))
		p.nonNeg(f+".files", int64(v.Files))
		p.nonNeg(f+".bytes", v.Bytes)
		p.nonNeg(f+".length", v.Length)
		r.Volumes = append(r.Volumes, Volume{Label: v.Label, Drive: v.Drive, Slot: v.Slot, New: v.New, Files: v.Files, Bytes: v.Bytes,
			Length: v.Length, Time: p.dur(f+".seconds", v.Seconds), Starved: p.dur(f+".starved_seconds", v.Starved)})
	}
	for i, jd := range j.DLEs {
		f := fmt.Sprintf("dles[%d]", i)
		if jd.Host == "" {
			p.fail(f+".host", "empty")
		}
		if jd.Path == "" {
			p.fail(f+".path", "empty")
		}
		p.level(f+".level", jd.Level)
		known := false
		for _, s := range statuses {
			known = known || jd.Status == s
		}
		if !known {
			p.fail(f+".status", "%q is not one of %s", jd.Status, strings.Join(statuses, ", "))
		}
		if jd.FlushedFrom != "" && !datestampRe.MatchString(jd.FlushedFrom) {
			p.fail(f+".flushed_from", "%q is not YYYYMMDDhhmmss", jd.FlushedFrom)
		}
		p.nonNeg(f+".files", jd.Files)
		p.nonNeg(f+".orig_bytes", jd.OrigBytes)
		p.nonNeg(f+".out_bytes", jd.OutBytes)
		d := DLE{Host: jd.Host, Path: jd.Path, Level: jd.Level, Status: jd.Status, Reason: jd.Reason,
			Strange: jd.Strange, Demoted: jd.Demoted, Warnings: jd.Warnings, Flushed: jd.FlushedFrom, Files: jd.Files,
			OrigSize: jd.OrigBytes, OutSize: jd.OutBytes,
			DumpTime: p.dur(f+".dump_seconds", jd.DumpSeconds), TapeTime: p.dur(f+".tape_seconds", jd.TapeSeconds),
			Streamed: jd.Streamed, Starved: p.dur(f+".starved_seconds", jd.Starved), Snapshot: jd.Snapshot}
		for k, h := range jd.Hooks {
			if h.Name == "" {
				p.fail(fmt.Sprintf("%s.hooks[%d].name", f, k), "empty")
			}
			if h.Exit < -1 {
				p.fail(fmt.Sprintf("%s.hooks[%d].exit", f, k), "%d; an exit status is -1 or more", h.Exit)
			}
			if h.Seconds < 0 || h.Seconds != h.Seconds {
				p.fail(fmt.Sprintf("%s.hooks[%d].seconds", f, k), "%v is not a duration", h.Seconds)
			}
			d.Hooks = append(d.Hooks, Hook{Name: h.Name, Command: h.Command, Exit: h.Exit, Seconds: h.Seconds, Output: h.Output, Error: h.Error})
		}
		for k, a := range jd.Retries {
			p.level(fmt.Sprintf("%s.retries[%d].level", f, k), a.Level)
			d.Retries = append(d.Retries, Attempt{Level: a.Level, Reason: a.Reason})
		}
		for k, rs := range jd.Resumes {
			f := fmt.Sprintf("%s.resumes[%d]", f, k)
			p.level(f+".level", rs.Level)
			p.nonNeg(f+".frames", rs.Frames)
			p.nonNeg(f+".bytes", rs.Bytes)
			p.nonNeg(f+".resent_bytes", rs.Resent)
			d.Resumes = append(d.Resumes, Resume{Level: rs.Level, Frames: rs.Frames, Bytes: rs.Bytes, Resent: rs.Resent, AgentSent: rs.Agent, Reason: rs.Reason})
		}
		for k, jp := range jd.Parts {
			pf := fmt.Sprintf("%s.parts[%d]", f, k)
			if jp.Volume == "" {
				p.fail(pf+".volume", "empty")
			}
			p.nonNeg(pf+".file", jp.File)
			if jp.Part < 1 {
				p.fail(pf+".part", "%d; parts are numbered from 1", jp.Part)
			}
			p.nonNeg(pf+".bytes", jp.Bytes)
			d.Parts = append(d.Parts, Part{Volume: jp.Volume, FileNo: jp.File, Part: jp.Part, Bytes: jp.Bytes})
		}
		r.DLEs = append(r.DLEs, d)
	}
	for i, jp := range j.Preflight {
		if jp.What == "" {
			p.fail(fmt.Sprintf("preflight[%d].what", i), "empty")
		}
		r.Preflight = append(r.Preflight, Problem{Where: jp.Where, What: jp.What})
	}
	for i, jp := range j.Problems {
		if jp.What == "" {
			p.fail(fmt.Sprintf("problems[%d].what", i), "empty")
		}
		r.Problems = append(r.Problems, Problem{Where: jp.Where, What: jp.What})
	}
	if len(p.errs) > 0 {
		return nil, fmt.Errorf("report JSON of run %q: %w", j.Datestamp, errors.Join(p.errs...))
	}
	return r, nil
}

// parser collects every problem of a report, not only the first.
type parser struct{ errs []error }

func (p *parser) fail(field, format string, a ...any) {
	if len(p.errs) < 20 {
		p.errs = append(p.errs, fmt.Errorf("%s: "+format, append([]any{field}, a...)...))
	}
}

func (p *parser) nonNeg(field string, v int64) {
	if v < 0 {
		p.fail(field, "%d is negative", v)
	}
}

func (p *parser) level(field string, l int) {
	if l < 0 || l > 99 {
		p.fail(field, "%d is not a dump level (0..99)", l)
	}
}

func (p *parser) dur(field string, s float64) time.Duration {
	if s < 0 || s > maxSeconds || math.IsNaN(s) {
		p.fail(field, "%v seconds is out of range (0..%g)", s, float64(maxSeconds))
		return 0
	}
	return fromSeconds(s)
}

func (p *parser) time(field string, s *string) time.Time {
	if s == nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		p.fail(field, "%q is not an RFC 3339 time like 2025-03-02T01:00:00+01:00", *s)
	}
	return t
}

// jsonError words encoding/json's errors for a person.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("not valid JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		return fmt.Errorf("%s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	case errors.Is(err, io.EOF):
		return errors.New("empty input; expected a JSON object")
	}
	return err
}

// Render turns a report kept in the catalog into the wanted format,
// "text" or "json". A report kept as JSON renders either way. A report
// kept as text (runs recorded before reports were kept as JSON) renders
// only as text.
func Render(stored []byte, format string) ([]byte, error) {
	if format != "text" && format != "json" {
		return nil, fmt.Errorf("report format %q: want text or json", format)
	}
	trimmed := bytes.TrimSpace(stored)
	if len(trimmed) == 0 {
		return nil, errors.New("the run has no report: it was interrupted before it finished")
	}
	if trimmed[0] != '{' {
		if format == "json" {
			return nil, errors.New("this run's report was kept as text only (it predates JSON reports): use --format text")
		}
		return stored, nil
	}
	r, err := ParseJSON(stored)
	if err != nil {
		return nil, err
	}
	if format == "json" {
		return r.JSON()
	}
	return []byte(r.Text()), nil
}
