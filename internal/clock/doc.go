// Package clock is tapir's one source of time for code whose behaviour
// depends on it: run and schedule times, the daemon's timer for the next
// night, the dumpers' wait for holding space or the taper, and the
// changers' polling and reminders. Code that must be testable takes a
// Clock (server.Deps.Clock, taper.SingleConfig.Clock, ...) instead of
// calling time.Now, time.After or time.NewTimer; Real is the wall clock.
//
// Fake is the one fake clock of the tests: time stands still until the
// test moves it (Advance, Set), which fires the timers that are due, and
// a test waits for the code under test to arm its timers with
// BlockUntil, an event rather than a sleep.
//
// Deadlines of network connections (SetDeadline) and measurements for
// reports and logs stay on the wall clock.
package clock
