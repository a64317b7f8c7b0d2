package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tapir-backup/tapir/internal/testsite"
)

// runAll dumps tree onto a vtape and times, alternating, a whole-DLE
// restore by the real binary straight from the catalog and the vtape
// against the plain pipeline on the same vtape file, into fresh
// directories of the same disk.
func runAll(tree, work, bin string, runs int) error {
	ctx := context.Background()
	site, _, vt, err := dumpOnVtape(ctx, tree, work)
	if err != nil {
		return err
	}
	// The tapir binary opens the catalog itself.
	site.Close()
	cfg := filepath.Join(work, "tapir.toml")
	if err := site.WriteConfig(cfg, testsite.DLE{Host: "bench", Path: "/data"}); err != nil {
		return err
	}
	want, err := treeSums(tree)
	if err != nil {
		return err
	}
	// Warm the page cache for both sides.
	exec.Command("sh", "-c", fmt.Sprintf("cat '%s' > /dev/null", vt[0])).Run()
	tapir := func(dir string) (float64, int64, error) {
		// GNU time forks (this process's vfork would make the child's
		// ru_maxrss that of this process, which hashed the tree) and
		// reports the peak RSS of tapir alone; its own start is in the
		// timing, a millisecond.
		rssFile := filepath.Join(work, "rss")
		t0 := time.Now()
		cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile,
			bin, "recover", "-c", cfg, "--host", "bench", "--path", "/data", "--all", "--to", dir}, identityArgs()...)...)
		out, err := cmd.CombinedOutput()
		el := time.Since(t0).Seconds()
		if err != nil {
			return 0, 0, fmt.Errorf("tapir recover --all: %v\n%s", err, out)
		}
		b, err := os.ReadFile(rssFile)
		if err != nil {
			return 0, 0, fmt.Errorf("peak RSS of tapir recover --all from /usr/bin/time: %w", err)
		}
		var rss int64
		if _, err := fmt.Sscan(string(b), &rss); err != nil {
			return 0, 0, fmt.Errorf("peak RSS of tapir recover --all: /usr/bin/time wrote %q: %w", b, err)
		}
		return el, rss, nil
	}
	baseline := func(dir string) (float64, error) {
		t0 := time.Now()
		sh := fmt.Sprintf("dd if='%s' bs=256k iflag=skip_bytes skip=32768 status=none | %s | tar -xpf - -C '%s'", vt[0], decompress(), dir)
		if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("baseline: %v\n%s", err, out)
		}
		return time.Since(t0).Seconds(), nil
	}
	check := func(who, dir string) error { return checkTree(who, dir, want) }
	var tt, bt []float64
	var peak int64
	for i := 0; i < runs; i++ {
		dir, _ := os.MkdirTemp(work, "tapir")
		dir2, _ := os.MkdirTemp(work, "tar")
		var el, el2 float64
		var rss int64
		// Alternate which side goes first.
		if i%2 == 0 {
			if el, rss, err = tapir(dir); err == nil {
				el2, err = baseline(dir2)
			}
		} else {
			if el2, err = baseline(dir2); err == nil {
				el, rss, err = tapir(dir)
			}
		}
		if err != nil {
			return err
		}
		if i == 0 {
			if err := check("tapir recover --all", dir); err != nil {
				return err
			}
			if err := check("tar -x", dir2); err != nil {
				return err
			}
		}
		peak = max(peak, rss)
		tt = append(tt, el)
		bt = append(bt, el2)
		fmt.Printf("   run %d  tapir recover --all %7.3f s (peak RSS %d KiB)   dd | zstd -dc | tar -xpf - %7.3f s\n", i+1, el, rss, el2)
		// The restored trees stay until the end: on ext4 without a
		// journal, creating files right after deleting as many costs
		// more (the allocator skips inodes deleted in the last minute),
		// and the cost would fall on whichever side runs next.
		defer os.RemoveAll(dir)
		defer os.RemoveAll(dir2)
	}
	tm, bm := median(tt), median(bt)
	fmt.Printf("restorebench: tapir_median=%.3f baseline_median=%.3f ratio=%.3f peak_rss_kib=%d\n", tm, bm, tm/bm, peak)
	return nil
}

// checkTree compares the regular files under dir with want (treeSums of
// the original).
func checkTree(who, dir string, want map[string][32]byte) error {
	got, err := treeSums(dir)
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s restored %d files, the tree has %d", who, len(got), len(want))
	}
	for p, s := range want {
		if got[p] != s {
			return fmt.Errorf("%s: %s differs from the original", who, p)
		}
	}
	return nil
}

// treeSums maps each regular file under dir to its SHA-256.
func treeSums(dir string) (map[string][32]byte, error) {
	m := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = [32]byte(h.Sum(nil))
		return nil
	})
	return m, err
}
