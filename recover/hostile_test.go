package recover

import "github.com/tapir-backup/tapir/recover/recovertest"

// The hostile-image helpers live in recovertest, shared with the server's
// restore tests; these names keep the tests here short.
type (
	tent  = recovertest.Entry
	arena = recovertest.Arena
)

var (
	reg        = recovertest.Reg
	dir        = recovertest.Dir
	dumpdir    = recovertest.Dumpdir
	symlink    = recovertest.Symlink
	hardlink   = recovertest.Hardlink
	node       = recovertest.Node
	withXattrs = recovertest.WithXattrs
	testMtime  = recovertest.Mtime
	mkTar      = recovertest.Tar
	newArena   = recovertest.NewArena
	unlock     = recovertest.Unlock
	snapshot   = recovertest.Snapshot
	isRoot     = recovertest.IsRoot
	fileMode   = recovertest.FileMode
)
