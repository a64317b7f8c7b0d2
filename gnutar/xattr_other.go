//go:build !linux

package gnutar

import (
	"errors"
	"fmt"
	"os"
)

// ReadAttrs reports no attributes outside Linux.
func ReadAttrs(path string) (map[string]string, error) { return nil, nil }

// ReadAttrsFile reports no attributes outside Linux.
func ReadAttrsFile(f *os.File) (map[string]string, error) { return nil, nil }

// ReadAttrsAt reports no attributes outside Linux.
func ReadAttrsAt(dir *os.File, name string) (map[string]string, error) { return nil, nil }

// XattrNames reports no attributes outside Linux.
func XattrNames(fd int) ([]string, error) { return nil, nil }

// ErrNoProc is never returned outside Linux.
var ErrNoProc = errors.New("/proc is not mounted")

// ApplyAttrs is not implemented outside Linux.
func ApplyAttrs(path string, records map[string]string) error {
	return SetAttrs(path, records, nil)
}

// SetAttrs is not implemented outside Linux.
func SetAttrs(path string, records map[string]string, set func(name string, val []byte) error) error {
	for k := range records {
		if k == PAXACLAccess || k == PAXACLDefault || len(k) > len(PAXXattrPrefix) && k[:len(PAXXattrPrefix)] == PAXXattrPrefix {
			return fmt.Errorf("gnutar: %s: record %s: xattrs and ACLs are restored on Linux only", path, k)
		}
	}
	return nil
}
