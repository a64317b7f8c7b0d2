package gnutar

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Pax records of `tar --xattrs --acls` (the names come from star).
const (
	PAXXattrPrefix = "SCHILY.xattr."
	PAXACLAccess   = "SCHILY.acl.access"
	PAXACLDefault  = "SCHILY.acl.default"
)

// The xattrs in which Linux keeps POSIX ACLs, in binary form.
const (
	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
)

// Binary POSIX ACL xattr: little-endian u32 version, then 8-byte entries
// {u16 tag, u16 perm, u32 id}; id is aclUndefinedID except for named
// users and groups.
const (
	aclVersion     = 2
	aclUserObj     = 0x01
	aclUser        = 0x02
	aclGroupObj    = 0x04
	aclGroup       = 0x08
	aclMask        = 0x10
	aclOther       = 0x20
	aclUndefinedID = 0xffffffff
)

// aclEntry is one POSIX ACL entry.
type aclEntry struct {
	tag  uint16
	perm uint16 // r=4 w=2 x=1
	id   uint32
}

// decodeACL parses the kernel's binary ACL xattr.
func decodeACL(b []byte) ([]aclEntry, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 {
		return nil, fmt.Errorf("binary ACL of %d bytes is not a 4-byte version plus 8-byte entries", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != aclVersion {
		return nil, fmt.Errorf("binary ACL has version %d, want %d", v, aclVersion)
	}
	var out []aclEntry
	for p := 4; p < len(b); p += 8 {
		e := aclEntry{
			tag:  binary.LittleEndian.Uint16(b[p:]),
			perm: binary.LittleEndian.Uint16(b[p+2:]),
			id:   binary.LittleEndian.Uint32(b[p+4:]),
		}
		if aclTagName(e.tag) == "" {
			return nil, fmt.Errorf("binary ACL entry %d has unknown tag %#x", len(out), e.tag)
		}
		if e.perm > 7 {
			return nil, fmt.Errorf("binary ACL entry %d has unknown permission bits %#x", len(out), e.perm)
		}
		out = append(out, e)
	}
	return out, nil
}

// encodeACL renders entries in the kernel's binary ACL xattr form.
func encodeACL(es []aclEntry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

func aclTagName(tag uint16) string {
	switch tag {
	case aclUserObj, aclUser:
		return "user"
	case aclGroupObj, aclGroup:
		return "group"
	case aclMask:
		return "mask"
	case aclOther:
		return "other"
	}
	return ""
}

// trivialACL reports whether es only restates the permission bits (owner,
// group, other), in which case GNU tar stores no ACL record.
func trivialACL(es []aclEntry) bool {
	for _, e := range es {
		if e.tag != aclUserObj && e.tag != aclGroupObj && e.tag != aclOther {
			return false
		}
	}
	return true
}

// aclText renders es as GNU tar 1.34 stores an ACL: one "tag:qualifier:perms"
// line per entry, each ended by "\n", no comments, no effective rights.
// Named users and groups are written by numeric id (GNU tar writes the
// name when it resolves and the id when it does not; both read back).
func aclText(es []aclEntry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(aclTagName(e.tag))
		b.WriteByte(':')
		if e.tag == aclUser || e.tag == aclGroup {
			b.WriteString(strconv.FormatUint(uint64(e.id), 10))
		}
		b.WriteByte(':')
		for i, c := range "rwx" {
			if e.perm&(4>>i) != 0 {
				b.WriteRune(c)
			} else {
				b.WriteByte('-')
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// idLookup resolves a user (group=false) or group name to its id.
type idLookup func(group bool, name string) (uint32, error)

// parseACLText parses ACL text as GNU tar, star or setfacl write it:
// entries separated by newlines or commas; "#" comments (such as
// "#effective:r--") ignored; tags user/u, group/g, mask/m, other/o, an
// optional "default:" prefix; qualifiers as names (resolved with lookup)
// or numeric ids; star's optional fourth field, the numeric id, wins over
// the name. The result is sorted as the kernel wants it; a missing mask is
// computed as the union of the group-class permissions when named entries
// need one (what setfacl does).
func parseACLText(text string, lookup idLookup) ([]aclEntry, error) {
	var es []aclEntry
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' }) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ":")
		if (f[0] == "default" || f[0] == "d") && len(f) >= 4 {
			f = f[1:]
		}
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("ACL entry %q: want tag:qualifier:perms", line)
		}
		e := aclEntry{id: aclUndefinedID}
		group := false
		switch f[0] {
		case "user", "u":
			e.tag = aclUserObj
		case "group", "g":
			e.tag, group = aclGroupObj, true
		case "mask", "m":
			e.tag = aclMask
		case "other", "o":
			e.tag = aclOther
		default:
			return nil, fmt.Errorf("ACL entry %q: unknown tag %q", line, f[0])
		}
		if f[1] != "" {
			if e.tag != aclUserObj && e.tag != aclGroupObj {
				return nil, fmt.Errorf("ACL entry %q: %s takes no qualifier", line, f[0])
			}
			e.tag <<= 1 // user_obj->user, group_obj->group
			idText := f[1]
			if len(f) == 4 && f[3] != "" {
				idText = f[3]
			}
			if id, err := strconv.ParseUint(idText, 10, 32); err == nil && id != aclUndefinedID {
				e.id = uint32(id)
			} else if lookup == nil {
				return nil, fmt.Errorf("ACL entry %q: %q is not a numeric id", line, idText)
			} else if e.id, err = lookup(group, f[1]); err != nil {
				return nil, fmt.Errorf("ACL entry %q: %w", line, err)
			}
		}
		if f[2] == "" || len(f[2]) > 3 {
			return nil, fmt.Errorf("ACL entry %q: bad permissions %q (want up to three of r, w, x, -)", line, f[2])
		}
		for _, c := range f[2] {
			bit := uint16(0)
			switch c {
			case 'r':
				bit = 4
			case 'w':
				bit = 2
			case 'x':
				bit = 1
			case '-':
				continue
			default:
				return nil, fmt.Errorf("ACL entry %q: bad permission %q (want r, w, x or -)", line, c)
			}
			if e.perm&bit != 0 {
				return nil, fmt.Errorf("ACL entry %q: permission %q given twice", line, c)
			}
			e.perm |= bit
		}
		es = append(es, e)
	}
	return normalizeACL(es)
}

// normalizeACL sorts es into the kernel's order (by tag, then id), rejects
// duplicates and missing required entries, and adds a mask when named
// entries need one.
func normalizeACL(es []aclEntry) ([]aclEntry, error) {
	if len(es) == 0 {
		return nil, nil
	}
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].tag != es[j].tag {
			return es[i].tag < es[j].tag
		}
		return es[i].id < es[j].id
	})
	has := map[uint16]bool{}
	var groupClass uint16
	for i, e := range es {
		if i > 0 && es[i-1].tag == e.tag && es[i-1].id == e.id {
			return nil, fmt.Errorf("ACL has two %s entries for the same id", aclTagName(e.tag))
		}
		has[e.tag] = true
		if e.tag == aclUser || e.tag == aclGroupObj || e.tag == aclGroup {
			groupClass |= e.perm
		}
	}
	for _, t := range []uint16{aclUserObj, aclGroupObj, aclOther} {
		if !has[t] {
			return nil, fmt.Errorf("ACL lacks its %s:: entry (user::, group:: and other:: are required)", aclTagName(t))
		}
	}
	if (has[aclUser] || has[aclGroup]) && !has[aclMask] {
		m := aclEntry{tag: aclMask, perm: groupClass, id: aclUndefinedID}
		i := sort.Search(len(es), func(i int) bool { return es[i].tag > aclMask })
		es = append(es[:i], append([]aclEntry{m}, es[i:]...)...)
	}
	return es, nil
}
