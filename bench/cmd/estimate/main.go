package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/tapir-backup/tapir/client"
)

func main() {
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: estimate DIR")
		os.Exit(2)
	}
	start := time.Now()
	est, err := client.Estimate(context.Background(), flag.Arg(0), client.DumpOptions{Level: 0}, []int{0})
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "estimate:", err)
		os.Exit(1)
	}
	fmt.Printf("estimate: elapsed_s=%.3f bytes=%d files=%d\n", elapsed.Seconds(), est[0].Bytes, est[0].Files)
}
