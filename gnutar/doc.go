// Package gnutar owns the parts of the GNU tar 1.34 pax dialect that Go's
// archive/tar does not provide, so that the tar streams the client agent
// writes are extracted exactly by `tar -xpf` (and `tar
// --listed-incremental=/dev/null -x`), and so that the restore code can do
// what GNU tar does when it extracts them:
//
//   - dumpdirs: the GNU.dumpdir pax record that lists a directory's contents
//     in an incremental archive (EncodeDumpdir, DecodeDumpdir, SortDumpdir),
//     and Purge (PurgeRoot on a directory opened as an os.Root), which
//     removes from a directory what the listing says was gone when the
//     archive was made, with GNU tar's exact rules;
//   - sparse files in GNU pax sparse format 1.0, written as raw 512-byte
//     blocks because tar.Writer drops GNU.sparse.* records (DataExtents,
//     SparseEntry, ExtentReader, Pad);
//   - extended attributes and POSIX ACLs as the SCHILY.xattr.* and
//     SCHILY.acl.* pax records of `tar --xattrs --acls` (ReadAttrs,
//     ApplyAttrs, and SetAttrs for setting them through a descriptor),
//     including the conversion between the kernel's binary ACL xattr and
//     GNU tar's ACL text.
//
// The package holds no state. The on-tape layout is described in
// docs/format/tar.md.
package gnutar
