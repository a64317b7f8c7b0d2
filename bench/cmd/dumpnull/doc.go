// Command dumpnull runs a tapir level-0 dump of a directory into
// io.Discard, calling client.Dump directly (zstd level 1, 1 MiB frames: the
// settings bench/dump.sh compares against `tar | zstd -1 -T0`). It owns
// only this measurement: on success it prints one line
//
//	dumpnull: elapsed_s=2.345 tar_bytes=... payload_bytes=... files=... frames=... warnings=0 peak_rss_kib=45678
//
// where peak_rss_kib is VmHWM from /proc/self/status read at the end.
package main
