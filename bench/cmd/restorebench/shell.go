package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/wire"
)

// runShell dumps tree onto a vtape and times, in turn (the order rotating
// from run to run), three restores of the whole DLE into fresh directories
// of the same disk: the recover shell's extract of everything through an
// index server started in-process ("add .; extract" at the DLE root: plan, frames over
// mutual TLS, decompression and extraction in the shell), the same straight
// from the catalog (tapir recover -c CONFIG --all), and the plain pipeline
// on the vtape file. It checks every tree against the original once, and
// reports the peak RSS and the CPU seconds of both tapir processes (the
// index server's, in this process, would be another machine's).
func runShell(tree, work, bin string, runs int) error {
	ctx := context.Background()
	site, _, vt, err := dumpOnVtape(ctx, tree, work)
	if err != nil {
		return err
	}
	defer site.Close()
	cfg := filepath.Join(work, "tapir.toml")
	if err := site.WriteConfig(cfg, testsite.DLE{Host: "bench", Path: "/data"}); err != nil {
		return err
	}
	addr, stop, err := site.StartServer(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer stop()
	files, err := site.Issue("bench", wire.RoleClient)
	if err != nil {
		return err
	}
	want, err := treeSums(tree)
	if err != nil {
		return err
	}
	// Warm the page cache for every side.
	exec.Command("sh", "-c", fmt.Sprintf("cat '%s' > /dev/null", vt[0])).Run()

	// timed runs a command and returns its wall time and, with rss, the
	// peak RSS and the CPU seconds (user + system) of the tapir process
	// (under GNU time, as runAll does).
	rssFile := filepath.Join(work, "rss")
	timed := func(rss bool, name string, args ...string) (float64, int64, float64, error) {
		if rss {
			args = append([]string{"-f", "%M %U %S", "-o", rssFile, name}, args...)
			name = "/usr/bin/time"
		}
		t0 := time.Now()
		out, err := exec.Command(name, args...).CombinedOutput()
		el := time.Since(t0).Seconds()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
		}
		var kib int64
		var user, sys float64
		if rss {
			b, err := os.ReadFile(rssFile)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("peak RSS from /usr/bin/time: %w", err)
			}
			if _, err := fmt.Sscan(string(b), &kib, &user, &sys); err != nil {
				return 0, 0, 0, fmt.Errorf("peak RSS and CPU: /usr/bin/time wrote %q: %w", b, err)
			}
		}
		return el, kib, user + sys, nil
	}
	sides := []struct {
		name string
		run  func(dir string) (float64, int64, float64, error)
	}{
		{"shell extract", func(dir string) (float64, int64, float64, error) {
			return timed(true, bin, "recover", "--server", addr, "--ca", files.CA, "--cert", files.Cert, "--key", files.Key,
				"--lcd", dir, "-e", "add .; extract")
		}},
		{"recover --all", func(dir string) (float64, int64, float64, error) {
			return timed(true, bin, "recover", "-c", cfg, "--host", "bench", "--path", "/data", "--all", "--to", dir)
		}},
		{"dd | zstd -dc | tar -xpf -", func(dir string) (float64, int64, float64, error) {
			return timed(false, "sh", "-c", fmt.Sprintf("dd if='%s' bs=256k iflag=skip_bytes skip=32768 status=none | zstd -qdc | tar -xpf - -C '%s'", vt[0], dir))
		}},
	}
	times := make([][]float64, len(sides))
	cpus := make([][]float64, len(sides))
	peak := make([]int64, len(sides))
	for i := 0; i < runs; i++ {
		line := fmt.Sprintf("   run %d", i+1)
		for k := range sides {
			j := (i + k) % len(sides) // the order rotates
			dir, err := os.MkdirTemp(work, "restore")
			if err != nil {
				return err
			}
			// The restored trees stay until the end (see runAll).
			defer os.RemoveAll(dir)
			el, rss, cpu, err := sides[j].run(dir)
			if err != nil {
				return err
			}
			if i == 0 {
				if err := checkTree(sides[j].name, dir, want); err != nil {
					return err
				}
			}
			times[j] = append(times[j], el)
			cpus[j] = append(cpus[j], cpu)
			peak[j] = max(peak[j], rss)
			line += fmt.Sprintf("   %s %7.3f s", sides[j].name, el)
			if cpu > 0 {
				line += fmt.Sprintf(" (CPU %.2f s)", cpu)
			}
		}
		fmt.Println(line)
	}
	sm, am, bm := median(times[0]), median(times[1]), median(times[2])
	fmt.Printf("restorebench: shell_median=%.3f all_median=%.3f baseline_median=%.3f ratio_baseline=%.3f ratio_all=%.3f shell_cpu=%.2f all_cpu=%.2f shell_rss_kib=%d all_rss_kib=%d\n",
		sm, am, bm, sm/bm, sm/am, median(cpus[0]), median(cpus[1]), peak[0], peak[1])
	return nil
}
