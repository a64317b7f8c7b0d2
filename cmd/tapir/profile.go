package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiling for benchmarks (bench/night.sh): TAPIR_CPUPROFILE=FILE writes a
// CPU profile of the whole command to FILE, TAPIR_MEMPROFILE=FILE a heap
// profile at its end (go tool pprof reads both). An environment variable
// rather than a flag, so that it reaches every process of a night (the
// agent as well as the server) without changing their command lines.
const (
	envCPUProfile = "TAPIR_CPUPROFILE"
	envMemProfile = "TAPIR_MEMPROFILE"
)

// startProfile starts what the environment asks for; the returned func
// stops it and writes the files.
func startProfile() func() {
	cpu, mem := os.Getenv(envCPUProfile), os.Getenv(envMemProfile)
	var cf *os.File
	if cpu != "" {
		f, err := os.Create(cpu)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "tapir: %s: %v\n", envCPUProfile, err)
		} else {
			cf = f
		}
	}
	return func() {
		if cf != nil {
			pprof.StopCPUProfile()
			cf.Close()
		}
		if mem != "" {
			f, err := os.Create(mem)
			if err == nil {
				runtime.GC()
				err = pprof.WriteHeapProfile(f)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "tapir: %s: %v\n", envMemProfile, err)
			}
		}
	}
}
