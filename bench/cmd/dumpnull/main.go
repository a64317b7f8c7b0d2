package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tapir-backup/tapir/bench/gen"
	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/image"
)

func main() {
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: dumpnull DIR")
		os.Exit(2)
	}
	warnings := 0
	sink := client.Sink{Payload: io.Discard, Warn: func(msg string) {
		warnings++
		fmt.Fprintln(os.Stderr, "dumpnull: warning:", msg)
	}}
	start := time.Now()
	res, err := client.Dump(context.Background(), flag.Arg(0), client.DumpOptions{Level: 0, Comp: image.CompZstd, CompressLevel: 1, FrameSize: 1 << 20}, sink)
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dumpnull:", err)
		os.Exit(1)
	}
	rss, err := gen.PeakRSS()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dumpnull:", err)
	}
	s := res.Summary
	fmt.Printf("dumpnull: elapsed_s=%.3f tar_bytes=%d payload_bytes=%d files=%d frames=%d warnings=%d peak_rss_kib=%d\n",
		elapsed.Seconds(), s.OriginalSize, s.PayloadSize, res.Files, len(s.Frames), warnings, rss)
}
