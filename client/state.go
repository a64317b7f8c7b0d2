package client

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/image"
)

// The incremental state of a DLE, as GNU tar's snapshot files keep it: for
// every path of the last dump at a level, what identified its content then.
// A level-N dump includes every file that differs from the state of the
// newest dump of a lower level. States live in
// <statedir>/<escaped DLE>/level-<N>.state; a dump writes its new state
// aside as level-<N>.state.new-<datestamp>, and only Promote (called when
// the server confirms the image is safe on its holding disk) makes it
// current. A failed or cut dump therefore never advances the state.

const stateMagic = "tapir-incremental-state-1"

// MaxLevel is the highest dump level (GNU tar and Amanda use 0..9).
const MaxLevel = 9

// FileState identifies the content and metadata of one path at dump time.
type FileState struct {
	Dev, Ino     uint64
	Mtime, Ctime int64 // nanoseconds since the epoch
	Size         int64
	Mode         uint32 // st_mode: type and permission bits
	UID, GID     uint32
}

// State is the snapshot written by a dump at Level.
type State struct {
	Magic     string
	DLE       string
	Level     int
	Datestamp string
	Dev       uint64 // device of the DLE root: a change means the DLE moved
	Files     map[string]FileState
}

// fileStateOfStat is the FileState of a stat buffer.
func fileStateOfStat(st *unix.Stat_t) FileState {
	return FileState{
		Dev: uint64(st.Dev), Ino: st.Ino,
		Mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec, Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
		Size: st.Size, Mode: st.Mode, UID: st.Uid, GID: st.Gid,
	}
}

// changed reports whether now differs from was. When the DLE moved to
// another device, inode numbers and ctimes are meaningless (a copy sets
// every ctime), so only what a faithful copy keeps is compared.
func changed(was, now FileState, moved bool) bool {
	if was.Mtime != now.Mtime || was.Size != now.Size || was.Mode != now.Mode || was.UID != now.UID || was.GID != now.GID {
		return true
	}
	if moved {
		return false
	}
	return was.Ino != now.Ino || was.Ctime != now.Ctime
}

// StateStore is the directory of incremental states on a client.
type StateStore struct{ Dir string }

func (s StateStore) dleDir(dle string) string {
	// The image name escaping is collision-free and never contains '/'.
	stem := (&image.Header{Host: "dle", Path: dle}).Name()
	return filepath.Join(s.Dir, strings.TrimSuffix(strings.TrimPrefix(stem, "dle."), ".0"))
}

func (s StateStore) path(dle string, level int) string {
	return filepath.Join(s.dleDir(dle), "level-"+strconv.Itoa(level)+".state")
}

var datestampRE = regexp.MustCompile(`^[0-9]{8,14}$`)

func (s StateStore) pending(dle string, level int, datestamp string) (string, error) {
	if !datestampRE.MatchString(datestamp) {
		return "", fmt.Errorf("datestamp %q: want YYYYMMDD[hhmmss]", datestamp)
	}
	return s.path(dle, level) + ".new-" + datestamp, nil
}

// Base returns the state a level-N dump compares against: the one of the
// highest level below N. It returns nil, nil when there is none.
func (s StateStore) Base(dle string, level int) (*State, error) {
	for l := level - 1; l >= 0; l-- {
		st, err := s.load(s.path(dle, l))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return st, err
	}
	return nil, nil
}

func (s StateStore) load(p string) (*State, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st State
	if err := gob.NewDecoder(bufio.NewReaderSize(f, 1<<20)).Decode(&st); err != nil || st.Magic != stateMagic {
		return nil, fmt.Errorf("incremental state %s is damaged (%v); move it away and the next dump of this level will hold every file", p, err)
	}
	return &st, nil
}

// WritePending stores st aside, to be promoted when the server confirms.
func (s StateStore) WritePending(st *State) error {
	p, err := s.pending(st.DLE, st.Level, st.Datestamp)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("incremental state directory: %w (is --state-dir writable?)", err)
	}
	st.Magic = stateMagic
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write incremental state: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = gob.NewEncoder(bw).Encode(st)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("write incremental state %s: %w", p, err)
	}
	return nil
}

// Promote makes the pending state of (dle, level, datestamp) current and
// drops the states of higher levels, which it supersedes.
func (s StateStore) Promote(dle string, level int, datestamp string) error {
	p, err := s.pending(dle, level, datestamp)
	if err != nil {
		return err
	}
	if err := os.Rename(p, s.path(dle, level)); err != nil {
		return fmt.Errorf("promote incremental state: %w", err)
	}
	for l := level + 1; l <= MaxLevel; l++ {
		if err := os.Remove(s.path(dle, l)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("drop superseded incremental state: %w", err)
		}
	}
	if d, err := os.Open(s.dleDir(dle)); err == nil {
		d.Sync()
		d.Close()
	}
	s.discardPending(dle)
	return nil
}

// discardPending removes states written by dumps that were never
// confirmed (failed, cut, or rejected by the server).
func (s StateStore) discardPending(dle string) {
	ms, _ := filepath.Glob(filepath.Join(s.dleDir(dle), "level-*.state.new-*"))
	for _, m := range ms {
		os.Remove(m)
	}
}

// Levels returns the levels that have a current state, lowest first.
func (s StateStore) Levels(dle string) []int {
	var out []int
	for l := 0; l <= MaxLevel; l++ {
		if _, err := os.Stat(s.path(dle, l)); err == nil {
			out = append(out, l)
		}
	}
	return out
}

// Check verifies that the state directory can be written.
func (s StateStore) Check() error {
	if s.Dir == "" {
		return errors.New("no state directory: incremental dumps are impossible; start the agent with --state-dir")
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("state directory %s: %w", s.Dir, err)
	}
	f, err := os.CreateTemp(s.Dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("state directory %s is not writable: %w", s.Dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}
