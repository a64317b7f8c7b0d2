// Package server owns a backup run and, later, the daemon around it.
//
// A run (`tapir dump`) takes the run lock, opens the catalog, scans the
// holding disks (leftovers of earlier runs are checked, salvaged, removed
// — partial files, and copies a killed run had already taped — or, with
// autoflush, queued first; a damaged one is kept and is a problem of the
// report), decides whether a volume is usable (degraded mode when not;
// a missing changer directory or holding disk is never created), notes
// the catalog's volumes that are in no slot (missing.go), asks every client agent for estimates, and
// runs up to inparallel dumpers (at most maxdumps per host, by priority
// then size) that stream each DLE into the holding pool — or straight to
// the taper when the image does not fit and a drive is idle — while one
// taper worker per drive ([changer] tapers) writes images to its drive's
// volumes through a scribe, whole images each, spanning volumes up to
// runtapes counted over all drives; a drive that can get no volume leaves
// its images to the others. A holding image is deleted only after
// all its parts are on volumes and the catalog committed; the tape files a
// failed write leaves are recorded as failed files. Failed dumps are
// retried; every attempt, demotion, decision and problem is in the report.
// A dump whose stream is cut for a transport reason resumes after the last
// whole frame instead (resume_attempts): the dumper lets only whole
// frames through to the holding disk, its checks and the taper (gate.go),
// so none of them ever takes a byte back, and asks the agent to continue
// after them (docs/format/agent-protocol.md, "Resuming a cut dump"). A
// client-side encrypted stream is ciphertext: the gate passes it up to
// the resume points the agent announces, checked against the age chunk
// layout.
//
// A night may run a subset of the disk list (Subset, `tapir dump -c FILE
// HOST [DISK...]`): the other DLEs are simply not part of it. A night is
// stopped early, cleanly, by Deps.Stop (SIGTERM to the server) or by a
// CancelRequest that `tapir status --cancel` leaves beside the status file
// (cancel.go); the report says who cancelled it. The status file
// (status.go) shows each dump's share of its estimate, its rate and what a
// held-back dump waits for; Watch redraws it and waits between nights. A
// reason said for many DLEs (no usable volume, the holding reserve) is
// said once in the report and the DLEs point to it (run.sayOnce).
//
// `tapir flush` runs the taper half alone on what earlier runs left. The
// administrative commands live here too (check, label, tape, verify, the
// holding disk, force, the volumes' reuse flags and rmvolume); those that
// change volumes or the holding disks take the run lock first, so that
// they never act under a running night. `tapir verify` (Verify) checks
// every tape file of a volume: its header against its own checksum and the
// catalog field by field, then the whole image read back; orphan tape
// files (not in the catalog) are never OK.
//
// `tapir vault` (Vault, vault.go) copies good images (and those waiting
// on the holding disk, kept on their copy if lost there) onto the volumes
// of each vault's label set ([vault], or each [[vault]]) with the same
// scribe, headers and checks as the taper, and records each copy;
// restores and verify read each set's volumes through its own changer
// (setSources), and a volume is pinned only by chains that are not
// complete on another set (chainPins). A vault's after_night runs it at
// the end of a night, under its lock.
//
// Volumes are overwritten in two phases (writeLabel, resolveOverwrites) and
// never while they hold a DLE's newest chain; the planner's look-ahead
// (lookAhead) promotes fulls before a chain blocks the rotation. A dump's
// tar stream is checked while it flows (ingest): clean relative names that
// match the agent's index. An encrypted dumptype (image/crypt) has the
// agent encrypt (encrypt = "client": the stream must be an age file, whose
// header the catalog keeps, and cannot be checked) or the server encrypt
// what it checked (encrypt = "server"); either way the server holds only
// recipients, never a key. Check warns when a DLE's recipients changed
// since its last full and, given an identity, proves it opens the newest
// image of each encrypted DLE. Restores on the backup server itself (`tapir
// recover -c`) live in server/restore and reach the volumes through
// VolumeSource, the same seam as the index server.
//
// Time comes from Deps.Clock (internal/clock) so that runs can be driven
// by tests: run and schedule times, the daemon's wait for the next night,
// a dumper's wait for holding space or the taper, the wait for a volume
// and the changers' polling. Network deadlines, the rate limit of netusage
// and the status file's refresh stay on the wall clock. The changer can
// be injected (Deps.Changer, and Deps.Changers for the drives of a run) to
// test a drive that stalls or fails.
package server
