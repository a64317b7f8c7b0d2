package server

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tests wait for events (a log line, a channel, a timer armed on the
// fake clock), never for time to pass, and never give up after a time of
// their own: a test that waits for ever is stopped by go test -timeout,
// with every goroutine's stack.

// syncBuffer is a log sink safe for concurrent writers; a test waits on
// it for what the log says (waitFor).
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // made by a waiter, closed by the next write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the log satisfies cond, looking again at each
// write. It returns false only when the test has ended (a goroutine of
// the test may wait).
func (s *syncBuffer) waitFor(t *testing.T, cond func(log string) bool) bool {
	for {
		s.mu.Lock()
		ok := cond(s.b.String())
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.Context().Done():
			return false
		}
	}
}

// waitCount waits until the log holds at least n records with message msg.
func (s *syncBuffer) waitCount(t *testing.T, msg string, n int) {
	s.waitFor(t, func(log string) bool { return countMsg(log, msg) >= n })
}

// countMsg counts the records with message msg in a text log
// (slog.TextHandler's format).
func countMsg(log, msg string) int {
	q := msg
	if strings.ContainsAny(msg, " =\"\\") {
		q = strconv.Quote(msg)
	}
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line+" ", " msg="+q+" ") {
			n++
		}
	}
	return n
}

// waitFiles waits until cond holds, checking it again after every change
// the kernel reports (inotify) in dirs and the directories below them:
// for state that only files tell, such as the status file a run rewrites
// every second or the holding files of another process. It has no
// deadline of its own (go test -timeout catches a wait for ever).
func waitFiles(t *testing.T, cond func() bool, dirs ...string) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	defer unix.Close(fd)
	const mask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_MODIFY
	paths := map[int32]string{}
	watch := func(dir string) {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				if wd, err := unix.InotifyAddWatch(fd, p, mask); err == nil {
					paths[int32(wd)] = p
				}
			}
			return nil
		})
	}
	for _, d := range dirs {
		watch(d)
	}
	buf := make([]byte, 64<<10)
	for !cond() {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("inotify read: %v", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			if ev.Mask&unix.IN_ISDIR != 0 && ev.Mask&unix.IN_CREATE != 0 {
				watch(filepath.Join(paths[ev.Wd], strings.TrimRight(string(name), "\x00")))
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}
