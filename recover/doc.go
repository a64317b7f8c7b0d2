// Package recover owns getting files back. The recover shell (Shell,
// RunShell: amrecover's commands, line editing and completion with
// peterh/liner, scripts with -e) talks to the index server through Client
// (docs/format/index-protocol.md): it browses the view of a DLE at a date,
// and extracts by receiving only the compressed frames that hold the
// selected files, decompressing and checking them, and writing them with
// the Extractor (mode, owner when root, times, symlinks, hard links,
// xattrs, sparse files), which refuses any name that would land outside
// the target directory. File and Tree restore straight from the catalog
// and the vtapes on the backup server (tapir recover -c).
package recover
