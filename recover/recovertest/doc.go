// Package recovertest builds hostile images and the arena they are
// restored into, for the tests of every restore path (the shell's
// Extractor, the server's restore.File and restore.Tree): tar streams made
// entry by entry, and a parent directory with a sentinel tree beside the
// target whose every byte, inode and xattr is compared after the restore.
package recovertest
