package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tapir-backup/tapir/bench/gen"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/taptest"
)

func main() {
	tree := flag.String("tree", "", "the tree to back up (each top-level directory is a DLE)")
	work := flag.String("work", "", "an empty directory for the site (certificates, holding, vtapes, catalog)")
	bin := flag.String("tapir", "tapir", "the tapir binary, for the client agent")
	stall := flag.Duration("stall", 30*time.Second, "how long the drive stalls (0: no stall)")
	after := flag.Int("stall-after", 100, "records written before the stall")
	hold := flag.String("holding", "256MiB", "holding disk use")
	flag.Parse()
	if err := run(*tree, *work, *bin, *hold, *stall, *after); err != nil {
		fmt.Fprintln(os.Stderr, "stallnight:", err)
		os.Exit(1)
	}
}

func run(tree, work, bin, hold string, stall time.Duration, after int) error {
	if tree == "" || work == "" {
		return errors.New("-tree and -work are required")
	}
	holdBytes, err := gen.ParseSize(hold)
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(work, "tls")
	addr, stopAgent, err := gen.StartAgent(bin, tlsDir, filepath.Join(work, "agent-state"))
	if err != nil {
		return err
	}
	defer stopAgent()
	ents, err := os.ReadDir(tree)
	if err != nil {
		return err
	}
	text := fmt.Sprintf(`org = "bench"
statedir = %q
inparallel = 4
maxdumps = 4
tapecycle = 1
[tls]
ca = %q
cert = %q
key = %q
[changer]
type = "disk"
path = %q
slots = 2
tapetype = "big"
[tapetype.big]
length = "100 GiB"
blocksize = "256 KiB"
[[holding]]
path = %q
use = %d
[host.localhost]
address = %q
`, filepath.Join(work, "state"), filepath.Join(tlsDir, "ca.crt"), filepath.Join(tlsDir, "backup.crt"), filepath.Join(tlsDir, "backup.key"),
		filepath.Join(work, "vtapes"), filepath.Join(work, "holding"), holdBytes, addr)
	for _, e := range ents {
		if e.IsDir() {
			text += fmt.Sprintf("[[dle]]\nhost = \"localhost\"\npath = %q\n", filepath.Join(tree, e.Name()))
		}
	}
	cfgPath := filepath.Join(work, "tapir.toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	// The administrator's part: tapir never creates the changer's
	// directory nor a holding disk.
	for _, d := range []string{cfg.Changer.Path, cfg.Holding[0].Path} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	tt := cfg.Tapetype()
	dc, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		return err
	}
	ch := taptest.Wrap(dc)
	var stalled time.Duration
	if stall > 0 {
		ch.StallAfter(after)
		go func() {
			<-ch.Stalled()
			t0 := time.Now()
			time.Sleep(stall)
			stalled = time.Since(t0)
			ch.Resume()
		}()
	}
	start := time.Now()
	rep, err := server.Dump(context.Background(), cfg, server.Deps{Changer: ch, Log: slog.New(slog.DiscardHandler)})
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	ok := 0
	var bytes int64
	for _, d := range rep.DLEs {
		if d.Status == report.StatusOK {
			ok++
		}
		bytes += d.OutSize
	}
	rss, err := gen.PeakRSS()
	if err != nil {
		return err
	}
	fmt.Printf("stallnight: elapsed_s=%.3f stalled_s=%.3f dles=%d ok=%d payload_bytes=%d dump_phase_s=%.3f peak_rss_kib=%d\n",
		elapsed.Seconds(), stalled.Seconds(), len(rep.DLEs), ok, bytes, rep.DumpTime.Seconds(), rss)
	return nil
}
