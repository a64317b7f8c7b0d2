// Command gendata writes a benchmark dataset (package bench/gen) into a
// directory, the same bytes for the same flags:
//
//	gendata -size 1GiB -seed 1 DIR             # dump tree: small files + a few 50–200 MiB ones
//	gendata -size 0 -largest 1GiB DIR          # one 1 GiB file (memory vs largest file)
//	gendata -files 100000 -size 0 DIR          # 100k empty files in 1000 directories (estimate)
//
// It owns the dataset generation only; bench/dump.sh and bench/estimate.sh
// call it and cache its output.
package main
