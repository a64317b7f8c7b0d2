package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// The allow list is a boundary. A DLE or an exclude list is opened
// beneath the most specific allow entry that contains its path, with
// os.Root: symlinks below the entry are followed only while they stay
// below it (a symlink with an absolute target, or one whose ".." leads
// out, is refused), whatever they are swapped for meanwhile. The entry
// itself is the administrator's own configuration: symlinks in its own
// path are followed, each time a request opens it, so that a directory
// mounted or re-pointed after the agent started is seen. Below the DLE the
// walk never follows a symlink at all (see walk.go).

// errOutside: the path lies below no allow entry.
var errOutside = errors.New("outside the allowed directories")

// allowEntry returns the longest entry of allow that is p or a directory
// above it, and p relative to it ("." for the entry itself).
func allowEntry(p string, allow []string) (entry, rel string, ok bool) {
	for _, al := range allow {
		al = filepath.Clean(al)
		var r string
		switch {
		case p == al:
			r = "."
		case al == "/" && strings.HasPrefix(p, "/"):
			r = p[1:]
		case strings.HasPrefix(p, al+"/"):
			r = p[len(al)+1:]
		default:
			continue
		}
		if !ok || len(al) > len(entry) {
			entry, rel, ok = al, r, true
		}
	}
	return entry, rel, ok
}

// openBeneath opens p (absolute and clean) with flag beneath its allow
// entry, which it returns. With no allow list it opens p as it is,
// following every symlink: there is no boundary to keep. Errors are
// errOutside, an escape (isEscape), an *fs.PathError from opening p, or a
// sentence about the allow entry itself.
func openBeneath(p string, allow []string, flag int) (*os.File, string, error) {
	if len(allow) == 0 {
		f, err := os.OpenFile(p, flag|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
		return f, "", err
	}
	entry, rel, ok := allowEntry(p, allow)
	if !ok {
		return nil, "", errOutside
	}
	root, err := os.OpenRoot(entry)
	if err != nil {
		return nil, entry, fmt.Errorf("the allowed directory %s (--allow on the client) cannot be opened: %v", entry, unwrapPath(err))
	}
	defer root.Close()
	f, err := root.OpenFile(rel, flag|syscall.O_NOCTTY, 0)
	return f, entry, err
}

// errEscapes is the error os.Root returns for a path that leads out of
// it; os does not export it, so it is taken from a path that surely
// escapes.
var errEscapes = sync.OnceValue(func() error {
	r, err := os.OpenRoot("/")
	if err != nil {
		return nil
	}
	defer r.Close()
	_, err = r.Lstat("..")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
})

// isEscape reports whether err says that a path led out of its os.Root.
func isEscape(err error) bool {
	e := errEscapes()
	return e != nil && errors.Is(err, e)
}

// openDLE opens the directory dle for reading, beneath its allow entry.
// Every error names the DLE as requested, never where a symlink led.
func openDLE(dle string, allow []string) (*os.File, error) {
	f, entry, err := openBeneath(dle, allow, os.O_RDONLY|syscall.O_DIRECTORY)
	if err == nil {
		return f, nil
	}
	switch {
	case errors.Is(err, errOutside):
		return nil, fmt.Errorf("DLE %s is outside the directories this agent may dump (%s); add it with --allow on the client", dle, strings.Join(allow, ", "))
	case isEscape(err):
		return nil, fmt.Errorf("DLE %s reaches outside the allowed directory %s through a symlink (an absolute one, or one whose .. leads out); the agent does not follow it: name the DLE by its real path below %s, or allow that place with --allow on the client", dle, entry, entry)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("DLE %s: no such directory", dle)
	case errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("DLE %s: not a directory", dle)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("DLE %s cannot be read: permission denied (does the agent run as root?)", dle)
	}
	return nil, fmt.Errorf("DLE %s: %v", dle, unwrapPath(err))
}

// openExcludeList opens an exclude list beneath its allow entry and checks
// that it is a regular file (a FIFO would block, a device would be read
// forever). A missing list is returned as an fs.ErrNotExist error; the
// caller warns. Errors never quote the file's contents.
func openExcludeList(l string, allow []string) (*os.File, error) {
	f, entry, err := openBeneath(l, allow, os.O_RDONLY|syscall.O_NONBLOCK)
	switch {
	case err == nil:
	case errors.Is(err, errOutside):
		return nil, fmt.Errorf("exclude list %s is outside the directories this agent may read (%s); move it below one of them", l, strings.Join(allow, ", "))
	case isEscape(err):
		return nil, fmt.Errorf("exclude list %s reaches outside the allowed directory %s through a symlink; the agent does not follow it: name the list by its real path below %s", l, entry, entry)
	case errors.Is(err, fs.ErrNotExist):
		return nil, &fs.PathError{Op: "open", Path: l, Err: fs.ErrNotExist}
	default:
		return nil, fmt.Errorf("exclude list %s: %v", l, unwrapPath(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("exclude list %s: %v", l, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("exclude list %s is not a regular file", l)
	}
	return f, nil
}
