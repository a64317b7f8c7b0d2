// Package gen makes the datasets of the benchmarks under bench/: trees of
// files generated deterministically from a seed, so that every run of a
// benchmark reads the same bytes. It owns the dataset shapes (and PeakRSS
// and StartAgent, shared by the mains in bench/cmd); the measuring is done
// by those mains and the scripts bench/*.sh.
package gen
