// Command restorebench measures a single-file restore through the index
// server against reading the whole image with standard tools. It dumps a
// tree at level 0 onto a vtape of a fresh site (package internal/testsite:
// the client's dump code, 1 MiB zstd frames, 256 KiB records), starts an
// index server in-process, and then, alternating, times
//
//	tapir recover --server ... -e 'add FILE; extract'     (the real binary)
//	dd if=VTAPEFILE bs=32k skip=1 | zstd -dc | tar -xf - ./FILE
//
// for a small file in the middle of the image, checking both restored
// files byte for byte. bench/restore.sh runs it; see bench/README.md.
package main
