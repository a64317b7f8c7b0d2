package recover

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/gnutar"
)

// The xattrs in which Linux keeps a directory's POSIX ACLs.
const (
	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
)

// completeAttrs says whether hdr, a directory entry, carries the complete
// set of its directory's xattrs and ACLs, so that one it lacks was not
// there when the image was made: an entry with a listing (GNU.dumpdir).
// tapir's client lists a directory only when it could open it, and reads
// the attributes of every directory it opened (client/walk.go), at every
// level; so does `tar -G --xattrs --acls`.
func completeAttrs(hdr *tar.Header) bool {
	if hdr.Typeflag != tar.TypeDir {
		return false
	}
	_, ok := hdr.PAXRecords[gnutar.PAXDumpdir]
	return ok
}

// pruneAttrs makes a directory restored from a chain carry only the
// attributes of the newest image that has it: before the entry's own are
// set (metaFd), it removes from the directory open as fd every user.*
// xattr, access ACL and default ACL (and, with SamePrivileges, trusted.*
// xattr) that the entry does not carry, left by an earlier image of the
// chain (or found in the target, with Overwrite). It does so only in
// Incremental mode and for entries that carry their complete set
// (completeAttrs): an entry without a listing leaves the directory's
// attributes as they are, as before. security.* xattrs (SELinux labels,
// capabilities) are never removed: the target's own security module may
// have set them, and a restore that does not recreate the image's
// privileges must not take the host's away either. Nor are other system.*
// ones.
//
// The ACLs go before the mode is set, so that the mode the entry gives is
// the one the directory keeps (removing an access ACL leaves its mask in
// the group bits).
func (x *Extractor) pruneAttrs(fd int, hdr *tar.Header, rel string) error {
	if !x.Incremental || !completeAttrs(hdr) {
		return nil
	}
	names, err := gnutar.XattrNames(fd)
	if errors.Is(err, unix.ENOTSUP) {
		return nil // nothing to remove where nothing can be kept
	}
	if err != nil {
		return x.soft(fmt.Errorf("%s: list its extended attributes: %w", x.show(rel), err))
	}
	var errs []error
	for _, name := range names {
		if !x.managed(name) || carries(hdr.PAXRecords, name) {
			continue
		}
		if err := unix.Fremovexattr(fd, name); err != nil && !errors.Is(err, unix.ENODATA) {
			errs = append(errs, fmt.Errorf("%s: remove %s, which the newest image of the directory does not hold: %w", x.show(rel), what(name), err))
		}
	}
	return x.soft(errors.Join(errs...))
}

// managed says whether a restore makes the xattr name of a directory
// exactly what the image says (pruneAttrs).
func (x *Extractor) managed(name string) bool {
	switch {
	case name == xattrACLAccess, name == xattrACLDefault:
		return true
	case strings.HasPrefix(name, "user."):
		return true
	case strings.HasPrefix(name, "trusted."):
		return x.SamePrivileges
	}
	return false
}

// carries says whether the pax records of an entry set the xattr name:
// the ACLs in GNU tar's text form or as raw system.posix_acl_* xattrs,
// the others as SCHILY.xattr.<name>.
func carries(recs map[string]string, name string) bool {
	if _, ok := recs[gnutar.PAXXattrPrefix+name]; ok {
		return true
	}
	var ok bool
	switch name {
	case xattrACLAccess:
		_, ok = recs[gnutar.PAXACLAccess]
	case xattrACLDefault:
		_, ok = recs[gnutar.PAXACLDefault]
	}
	return ok
}

// what names an xattr for a person.
func what(name string) string {
	switch name {
	case xattrACLAccess:
		return "its access ACL"
	case xattrACLDefault:
		return "its default ACL"
	}
	return "xattr " + name
}
