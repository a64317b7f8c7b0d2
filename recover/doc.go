// Package recover owns getting files back. The recover shell (Shell,
// RunShell: amrecover's commands, line editing and completion with
// peterh/liner, scripts with -e) talks to the index server through Client
// (docs/format/index-protocol.md): it browses the view of a DLE at a date,
// and extracts by receiving only the compressed frames that hold the
// selected files, decompressing and checking them (several at once, ahead
// of the writing, with bounded memory: receive.go), and writing them with
// the Extractor (mode, owner when root, times, symlinks, hard links,
// xattrs, sparse files: holes only where the image says the file is
// sparse). Frames of an encrypted image arrive sealed (the
// age chunks that hold them): the shell unwraps each image's key with its
// identity (--identity) before anything is written, and opens the chunks
// in the decompressing goroutines, so nothing that did not authenticate
// is decoded or written (crypt.go, receive.go). It knows the index protocol and the
// payload's frames, never the configuration, the catalog or the volumes:
// restores run on the backup server itself (tapir recover -c) live in
// server/restore and use the Extractor from here. recover/recovertest
// builds hostile images and arenas for the tests of both.
//
// The shell has one spelling of names (escape.go): Escape for every name
// it prints (control characters and bytes that are not UTF-8 as \xHH),
// EscapeWord for what completion inserts, and one tokenizer for what is
// typed (\xHH, quotes, $'...'), where an escaped glob character matches
// itself, in the shell (path.Match) and on the server (sqlGlob). A command
// that fails because the index server closed the connection reconnects
// and runs once more (reconnect.go); a failed TLS handshake is explained
// from this host's side: its CA file, --server, --server-name
// (tlshint.go).
//
// Every write of every restore goes through the Extractor, which writes
// through an os.Root opened on the target directory (and *at system calls
// relative to directories opened through it): no name, symlink, hard link
// or directory listing in an image can make it touch anything outside the
// target, and the target itself is never removed, replaced or re-moded by
// an entry. Device nodes, setuid and setgid bits and trusted.* and
// security.* xattrs are recreated only when asked (SamePrivileges: the
// shell restoring the host's own files, or --same-privileges); otherwise
// each entry concerned is reported (Dropped).
//
// Applying a chain (Extractor.Incremental), a directory entry with a
// listing carries the directory's whole set of attributes, so the
// Extractor makes the directory's ACLs and user.* xattrs (trusted.* with
// SamePrivileges; security.* never) exactly that set, removing what an
// earlier image left (dirattrs.go).
package recover
