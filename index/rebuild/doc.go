// Package rebuild recreates a catalog from the media alone: the labels of
// the volumes in a changer, the header of every tape file, the payloads
// (seek tables for zstd, member and frame boundaries found by reading for
// gzip and uncompressed payloads), the tar streams (the file index, with
// the offsets the client records, and the directory listings), and the
// images left on the holding disks. Nothing but the media is trusted:
// every header must match its own checksum (a tape file whose header does
// not is left out and reported, never recorded), and every payload is read
// whole and its SHA-256 checked against its header.
package rebuild
