// Command restorebench measures restores against reading the whole image
// with standard tools. It dumps a tree at level 0 onto a vtape of a fresh
// site (package internal/testsite: the client's dump code, 1 MiB zstd
// frames, 256 KiB records) and then, alternating, times either
//
//	tapir recover --server ... -e 'add FILE; extract'     (the real binary)
//	dd if=VTAPEFILE bs=32k skip=1 | zstd -dc | tar -xf - ./FILE
//
// for a small file in the middle of the image, through an index server it
// starts in-process, checking both restored files byte for byte; or, with
// -all, the whole DLE:
//
//	tapir recover -c CONFIG --host bench --path /data --all --to DIR
//	dd if=VTAPEFILE bs=256k iflag=skip_bytes skip=32768 | zstd -dc | tar -xpf - -C DIR
//
// into fresh directories of the same disk, checking both trees' files
// against the original once (SHA-256 of every file) and reporting the
// tapir process's peak RSS; or, with -shell, the whole DLE three ways in
// turn, the recover shell's extract through an index server it starts
// in-process first:
//
//	tapir recover --server ... -e 'add .; extract'
//	tapir recover -c CONFIG --host bench --path /data --all --to DIR
//	dd if=VTAPEFILE bs=256k iflag=skip_bytes skip=32768 | zstd -dc | tar -xpf - -C DIR
//
// with the peak RSS and CPU seconds of both tapir processes.
// bench/restore.sh runs it; see bench/README.md.
package main
