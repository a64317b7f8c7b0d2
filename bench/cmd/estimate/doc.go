// Command estimate runs tapir's level-0 estimate of a directory, calling
// client.Estimate directly; bench/estimate.sh compares its time with
// `find DIR -printf '%s\n'`. It owns only this measurement: on success it
// prints one line
//
//	estimate: elapsed_s=0.123 bytes=... files=...
package main
