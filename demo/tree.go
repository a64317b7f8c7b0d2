package demo

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// TreeStats describes a generated tree.
type TreeStats struct {
	Files int
	Bytes int64
}

var words = strings.Fields(`backup tape volume holding planner taper dumper level full incremental
catalog index restore archive frame header label cycle night report host disk path file record
filemark block drive robot slot barcode changer estimate compress checksum verify flush reserve`)

// Generate writes a deterministic sample tree of a few thousand files of
// mixed sizes under dir: half compressible text, half random bytes, in
// nested directories, with a symlink, a hard link and an empty directory.
func Generate(dir string, seed uint64) (TreeStats, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x7a91))
	var st TreeStats
	base := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for d := 0; d < 40; d++ {
		sub := filepath.Join(dir, fmt.Sprintf("dept%02d", d), fmt.Sprintf("proj%d", d%7))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return st, err
		}
		for f := 0; f < 75; f++ {
			size := 512 + r.IntN(24*1024)
			switch {
			case f == 0 && d%10 == 0:
				size = 2<<20 + r.IntN(1<<20)
			case f%25 == 0:
				size = 128<<10 + r.IntN(128<<10)
			}
			var name string
			var b []byte
			if f%2 == 0 {
				name = fmt.Sprintf("notes-%03d.txt", f)
				b = text(r, size)
			} else {
				name = fmt.Sprintf("blob-%03d.bin", f)
				b = make([]byte, size)
				for i := range b {
					b[i] = byte(r.Uint32())
				}
			}
			p := filepath.Join(sub, name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return st, err
			}
			mt := base.Add(time.Duration(r.IntN(300*24)) * time.Hour)
			if err := os.Chtimes(p, mt, mt); err != nil {
				return st, err
			}
			st.Files++
			st.Bytes += int64(size)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		return st, err
	}
	if err := os.Symlink("dept00/proj0/notes-002.txt", filepath.Join(dir, "latest-notes")); err != nil {
		return st, err
	}
	if err := os.Link(filepath.Join(dir, "dept01", "proj1", "notes-004.txt"), filepath.Join(dir, "hardlinked-notes.txt")); err != nil {
		return st, err
	}
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho restored\n"), 0o750); err != nil {
		return st, err
	}
	return st, nil
}

func text(r *rand.Rand, size int) []byte {
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return []byte(b.String()[:size])
}

// Touch changes a few files, as a day of work would, and returns how many.
func Touch(dir string, now time.Time) (int, error) {
	n := 0
	for d := 0; d < 40; d += 9 {
		p := filepath.Join(dir, fmt.Sprintf("dept%02d", d), fmt.Sprintf("proj%d", d%7), "notes-010.txt")
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return n, err
		}
		fmt.Fprintf(f, "edited %s\n", now.Format(time.RFC3339Nano))
		if err := f.Close(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// pickFile chooses the file the demo restores: one the night touched when
// there was one, so the restore proves the newest image is read.
func pickFile(dir string, night int) (string, error) {
	if night > 1 {
		return "dept09/proj2/notes-010.txt", nil
	}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".txt") {
			r, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(r))
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no file to restore in %s: %v", dir, err)
	}
	sort.Strings(files)
	return files[len(files)/2], nil
}

// SecretFile is the file of the encrypted DLE that each demo night
// changes (TouchSecret) and restores.
const SecretFile = "payroll/payroll-03.txt"

// TouchSecret appends a line to SecretFile, so that the next incremental
// of the encrypted DLE holds it.
func TouchSecret(dir string, now time.Time) error {
	f, err := os.OpenFile(filepath.Join(dir, SecretFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "\nchanged %s\n", now.UTC().Format(time.RFC3339Nano)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// GenerateSecrets writes the small tree of the demo's encrypted DLE: a
// few directories of text files, one larger than an age chunk.
func GenerateSecrets(dir string) (int, error) {
	r := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := 0
	for d, name := range []string{"payroll", "contracts", "keys-escrow"} {
		sub := filepath.Join(dir, name)
		if err := os.MkdirAll(sub, 0o750); err != nil {
			return n, err
		}
		for f := 0; f < 12; f++ {
			var b strings.Builder
			size := 300 + r.IntN(4000)
			if d == 0 && f == 0 {
				size = 200 << 10
			}
			for b.Len() < size {
				b.WriteString(words[r.IntN(len(words))])
				b.WriteByte(' ')
			}
			p := filepath.Join(sub, fmt.Sprintf("%s-%02d.txt", name, f))
			if err := os.WriteFile(p, []byte(b.String()), 0o640); err != nil {
				return n, err
			}
			if err := os.Chtimes(p, base, base); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
