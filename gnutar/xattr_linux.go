package gnutar

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ReadAttrs returns the pax records for path's extended attributes and
// POSIX ACLs, as `tar --format=posix --xattrs --acls` stores them:
// SCHILY.xattr.<name> with the raw value for every xattr except the two
// ACL xattrs, which become SCHILY.acl.access and SCHILY.acl.default in
// GNU tar's text form (see aclText). An access ACL that only restates the
// permission bits is omitted, as GNU tar omits it. Symlinks are not
// followed. It returns a nil map when there is nothing to store; a
// filesystem without xattr support is not an error.
func ReadAttrs(path string) (map[string]string, error) {
	return readAttrs(path,
		func(buf []byte) (int, error) { return unix.Llistxattr(path, buf) },
		func(name string, buf []byte) (int, error) { return unix.Lgetxattr(path, name, buf) })
}

// ReadAttrsFile is ReadAttrs for a file or directory already open: the
// attributes are read through its descriptor (flistxattr, fgetxattr), so
// they are those of the very file that was opened, whatever its path
// leads to now.
func ReadAttrsFile(f *os.File) (map[string]string, error) {
	fd := int(f.Fd())
	return readAttrs(f.Name(),
		func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) },
		func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) })
}

// ReadAttrsAt is ReadAttrs for the entry name (one path component, no
// '/') of the open directory dir, not following it when it is a symlink:
// the entry is reached through /proc/self/fd/<dir>/<name>, so that
// neither a directory above it nor the entry itself can be swapped for a
// symlink that leads elsewhere. It is for the entries that cannot be
// opened to read their attributes (symlinks, devices, FIFOs). Without
// /proc it returns ErrNoProc.
func ReadAttrsAt(dir *os.File, name string) (map[string]string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("gnutar: read xattrs: %q is not a directory entry name", name)
	}
	if !procFDs() {
		return nil, ErrNoProc
	}
	p := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + name
	what := dir.Name() + "/" + name
	return readAttrs(what,
		func(buf []byte) (int, error) { return unix.Llistxattr(p, buf) },
		func(name string, buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) })
}

// ErrNoProc: /proc is not mounted, so ReadAttrsAt cannot reach an entry
// by its directory's descriptor.
var ErrNoProc = errors.New("/proc is not mounted: the extended attributes of symlinks and special files cannot be read safely")

var procFDs = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// readAttrs does ReadAttrs with list and get (the l*, f* or *at variants
// of listxattr and getxattr); what names the file in errors.
func readAttrs(what string, list func([]byte) (int, error), get func(string, []byte) (int, error)) (map[string]string, error) {
	names, err := listXattrs(list)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("gnutar: list xattrs of %s: %w", what, err)
	}
	var recs map[string]string
	put := func(k, v string) {
		if recs == nil {
			recs = make(map[string]string)
		}
		recs[k] = v
	}
	for _, name := range names {
		val, err := getXattr(get, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("gnutar: read xattr %q of %s: %w", name, what, err)
		}
		switch name {
		case xattrACLAccess, xattrACLDefault:
			es, err := decodeACL(val)
			if err != nil {
				return nil, fmt.Errorf("gnutar: xattr %q of %s: %w", name, what, err)
			}
			if name == xattrACLAccess && trivialACL(es) {
				continue
			}
			if len(es) == 0 {
				continue
			}
			key := PAXACLAccess
			if name == xattrACLDefault {
				key = PAXACLDefault
			}
			put(key, aclText(es))
		default:
			put(PAXXattrPrefix+name, string(val))
		}
	}
	return recs, nil
}

// ApplyAttrs sets on path (not following symlinks) the xattrs and ACLs
// described by pax records: SCHILY.xattr.<name> sets xattr name to the
// raw value; SCHILY.acl.access and SCHILY.acl.default set the ACLs from
// text (names are resolved on this host, numeric ids taken as they are).
// When both an ACL text record and the raw system.posix_acl_* xattr that
// GNU tar also stores are present, the text wins. Other keys are ignored.
// Apply after chmod: setting an access ACL sets the group permission bits
// to its mask. Every record is tried; the error lists each one that
// failed, with the path and the attribute.
func ApplyAttrs(path string, records map[string]string) error {
	return SetAttrs(path, records, func(name string, val []byte) error {
		return unix.Lsetxattr(path, name, val, 0)
	})
}

// SetAttrs is ApplyAttrs with the setting left to set, which receives
// each xattr as the kernel takes it (name, raw value; the ACLs in the
// kernel's binary form), in the order of the records' keys: the restore
// code sets them through a file descriptor (fsetxattr) rather than a
// path. what names the file in errors.
func SetAttrs(what string, records map[string]string, set func(name string, val []byte) error) error {
	keys := make([]string, 0, len(records))
	for k := range records {
		if strings.HasPrefix(k, PAXXattrPrefix) || k == PAXACLAccess || k == PAXACLDefault {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		v := records[k]
		var name string
		var val []byte
		switch k {
		case PAXACLAccess, PAXACLDefault:
			name = xattrACLAccess
			if k == PAXACLDefault {
				name = xattrACLDefault
			}
			es, err := parseACLText(v, lookupID)
			if err != nil {
				errs = append(errs, fmt.Errorf("gnutar: %s: record %s: %w", what, k, err))
				continue
			}
			if len(es) == 0 {
				continue
			}
			val = encodeACL(es)
		default:
			name = strings.TrimPrefix(k, PAXXattrPrefix)
			if name == "" {
				errs = append(errs, fmt.Errorf("gnutar: %s: record %s names no xattr", what, k))
				continue
			}
			if _, ok := records[PAXACLAccess]; ok && name == xattrACLAccess {
				continue
			}
			if _, ok := records[PAXACLDefault]; ok && name == xattrACLDefault {
				continue
			}
			val = []byte(v)
		}
		if err := set(name, val); err != nil {
			hint := ""
			switch {
			case errors.Is(err, unix.ENOTSUP):
				hint = " (the filesystem does not support it)"
			case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
				hint = " (needs more privilege, or not allowed on this file type)"
			}
			errs = append(errs, fmt.Errorf("gnutar: %s: set %s from record %s: %w%s", what, name, k, err, hint))
		}
	}
	return errors.Join(errs...)
}

// lookupID resolves a user or group name on this host.
func lookupID(group bool, name string) (uint32, error) {
	var s string
	if group {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, fmt.Errorf("group %q is unknown on this host: %w", name, err)
		}
		s = g.Gid
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, fmt.Errorf("user %q is unknown on this host: %w", name, err)
		}
		s = u.Uid
	}
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("id %q of %q is not numeric", s, name)
	}
	return uint32(id), nil
}

// listXattrs returns the xattr names that list reads.
// XattrNames returns the names of the extended attributes of the open
// file fd, sorted.
func XattrNames(fd int) ([]string, error) {
	return listXattrs(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) })
}

func listXattrs(list func([]byte) (int, error)) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := list(buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := list(nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+1024)
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		sort.Strings(names)
		return names, nil
	}
}

// getXattr returns the value of xattr name of path, not following symlinks.
func getXattr(get func(string, []byte) (int, error), name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := get(name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+256)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
