package server

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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

// poll waits until cond holds, looking every few milliseconds: only for
// state that no event announces (the status file that a run refreshes
// every second). It has no deadline of its own.
func poll(t *testing.T, cond func() bool) {
	for !cond() {
		select {
		case <-time.After(20 * time.Millisecond):
		case <-t.Context().Done():
			return
		}
	}
}
