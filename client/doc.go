// Package client is the agent that runs on every client host (`tapir
// client`, TCP 10080) and touches users' data: it answers the server's
// selfcheck, estimate and dump requests over mutual TLS. A dump walks a
// DLE, writes it as a pax tar stream cut into independently compressed
// frames (package image), and sends it with one index record per entry;
// asked to, it encrypts the framed payload to age recipients on its way
// out (image/crypt), the frame records staying in the plaintext.
// For a dump the server names with a token, the agent keeps on its disk,
// while the dump lasts, the journal of its walk and a checkpoint of every
// frame (resume.go), so that a cut stream continues after the last frame
// the server holds: the walk is replayed from the journal without reading
// what the image holds, the cut entry finished, and the rest walked live
// (replay.go). A dump it encrypts also keeps the age file key and the
// encryptor's state at its latest frame ends (at least 64 of them and
// 64 MiB of tar), each announced to the server (wire.Checkpoint), so that
// a resume continues the same age file (resume_crypt.go).
// The agent's allow list is a boundary: a DLE and its exclude lists are
// opened beneath it without following a symlink out, the walk goes by
// directory descriptors and never follows a symlink, and what is sent
// back (warnings, failure texts) is bounded (limits.go).
//
// A dump can be made consistent (issue 20): pre and post hooks run
// around it (hooks.go), a snapshot of the DLE is made right before the
// walk, read instead of the live tree under the DLE's names, and removed
// in every case (snapshot.go: btrfs, lvm and zfs by their own tools,
// or an administrator's create and remove commands), an intent ledger
// under the state directory letting the next agent remove what one
// killed in the middle left. A command DLE's payload is the standard
// output of a command (command.go: pg_dump -Fc, say), framed, hashed and
// encrypted as a walk's tar stream is. Every command the server names
// must lie below the agent's --allow-exec list (exec.go), a second
// boundary: nothing runs without it, never through a shell, in a
// process group of its own with a minimal environment and bounded
// output; the agent's own snapshot tools are found on its PATH.
//
// The package also holds Remote, the server's side of the same protocol,
// so that both ends of docs/format/agent-protocol.md live in one place.
// The client knows nothing of tapes, holding disks or the catalog.
package client
