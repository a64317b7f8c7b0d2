package gnutar

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fakeLookup resolves the names of a Debian base system without asking
// the host.
func fakeLookup(group bool, name string) (uint32, error) {
	ids := map[string]uint32{"nobody": 65534, "root": 0}
	if group {
		ids = map[string]uint32{"daemon": 1, "root": 0, "nogroup": 65534}
	}
	if id, ok := ids[name]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("unknown name %q", name)
}

func TestACLBinaryText(t *testing.T) {
	// The binary values are what the kernel returned for files made with
	// setfacl -m u:nobody:rwx,g:daemon:r-x and setfacl -d -m u:1234:r-x.
	tests := []struct {
		name string
		bin  string
		text string
	}{
		{"access", "\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff\x02\x00\a\x00\xfe\xff\x00\x00\x04\x00\x04\x00\xff\xff\xff\xff\b\x00\x05\x00\x01\x00\x00\x00\x10\x00\a\x00\xff\xff\xff\xff \x00\x04\x00\xff\xff\xff\xff",
			"user::rw-\nuser:65534:rwx\ngroup::r--\ngroup:1:r-x\nmask::rwx\nother::r--\n"},
		{"default", "\x02\x00\x00\x00\x01\x00\a\x00\xff\xff\xff\xff\x02\x00\x05\x00\xd2\x04\x00\x00\x04\x00\x05\x00\xff\xff\xff\xff\x10\x00\x05\x00\xff\xff\xff\xff \x00\x05\x00\xff\xff\xff\xff",
			"user::rwx\nuser:1234:r-x\ngroup::r-x\nmask::r-x\nother::r-x\n"},
		{"trivial", "\x02\x00\x00\x00\x01\x00\x07\x00\xff\xff\xff\xff\x04\x00\x00\x00\xff\xff\xff\xff \x00\x01\x00\xff\xff\xff\xff",
			"user::rwx\ngroup::---\nother::--x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := decodeACL([]byte(tt.bin))
			if err != nil {
				t.Fatal(err)
			}
			if got := aclText(es); got != tt.text {
				t.Fatalf("aclText = %q, want %q", got, tt.text)
			}
			back, err := parseACLText(tt.text, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(encodeACL(back)); got != tt.bin {
				t.Fatalf("encodeACL(parse(text)) = %q, want %q", got, tt.bin)
			}
			if trivialACL(es) != (tt.name == "trivial") {
				t.Fatalf("trivialACL = %v", trivialACL(es))
			}
		})
	}
}

func TestParseACLText(t *testing.T) {
	want := "user::rw-\nuser:65534:rwx\ngroup::r--\ngroup:1:r-x\nmask::rwx\nother::r--\n"
	tests := []struct {
		name, in, want string
	}{
		{"GNU tar 1.34 with names", "user::rw-\nuser:nobody:rwx\ngroup::r--\ngroup:daemon:r-x\nmask::rwx\nother::r--\n", want},
		{"ours, numeric", want, want},
		{"star, name and id", "user::rw-,user:someone:rwx:65534,group::r--,group:other:r-x:1,mask::rwx,other::r--", want},
		{"getfacl with comments", "# file: x\nuser::rw-\nuser:nobody:rwx\t#effective:rwx\ngroup::r--\ngroup:daemon:r-x #effective:r-x\nmask::rwx\nother::r--\n\n", want},
		{"short tags, unordered, no mask", "o::r,g:daemon:rx,u::rw,g::r,u:65534:wrx", want},
		{"default prefix", "default:user::rwx,default:group::r-x,default:other::---", "user::rwx\ngroup::r-x\nother::---\n"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := parseACLText(tt.in, fakeLookup)
			if err != nil {
				t.Fatal(err)
			}
			if got := aclText(es); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseACLTextErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"user::rw-\ngroup::r--", "lacks its other:: entry"},
		{"user::rw-,user::r--,group::r--,other::---", "two user entries"},
		{"user::rwz,group::r--,other::---", "bad permission"},
		{"user::rrw,group::r--,other::---", "given twice"},
		{"user::rwxr,group::r--,other::---", "bad permissions"},
		{"user::,group::r--,other::---", "bad permissions"},
		{"bogus::rw-", "unknown tag"},
		{"mask:x:rw-", "takes no qualifier"},
		{"user:rw-", "want tag:qualifier:perms"},
		{"user:nosuchuser:rw-,user::rw-,group::r--,other::---", "unknown name"},
	}
	for _, tt := range tests {
		_, err := parseACLText(tt.in, fakeLookup)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseACLText(%q) error = %v, want %q", tt.in, err, tt.want)
		}
	}
	if _, err := parseACLText("user:bob:rw-,user::rw-,group::r--,other::---", nil); err == nil || !strings.Contains(err.Error(), "not a numeric id") {
		t.Errorf("name without lookup: %v", err)
	}
}

func TestDecodeACLErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "not a 4-byte version"},
		{"\x02\x00\x00\x00\x01", "not a 4-byte version"},
		{"\x01\x00\x00\x00", "version 1"},
		{"\x02\x00\x00\x00\x40\x00\x07\x00\xff\xff\xff\xff", "unknown tag"},
		{"\x02\x00\x00\x00\x01\x00\x08\x00\xff\xff\xff\xff", "unknown permission"},
	}
	for _, tt := range tests {
		_, err := decodeACL([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("decodeACL(%q) error = %v, want %q", tt.in, err, tt.want)
		}
	}
	es, err := decodeACL([]byte("\x02\x00\x00\x00"))
	if err != nil || len(es) != 0 || !reflect.DeepEqual(encodeACL(es), []byte("\x02\x00\x00\x00")) {
		t.Errorf("empty ACL: %v %v", es, err)
	}
}
