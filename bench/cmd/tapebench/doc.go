// Command tapebench measures the taper: one holding image of -size bytes
// written by the scribe (read-ahead, one record per write) onto a vtape
// and onto the fake st drive through FUSE (root only; the real st ioctl
// path), against `dd if=IMAGE of=TARGET bs=256k` onto the same targets, in
// the same invocation, alternating, median of -runs.
//
//	tapebench -work DIR [-size 1GiB] [-runs 3]
//
// It prints one line per run and a result line of key=value pairs.
package main
