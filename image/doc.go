// Package image owns the on-disk and on-tape form of one backup image: the
// 32 KiB text header (which carries its own checksum, so that a changed
// byte anywhere in it is refused, with a diagnosis that names what
// changed), the framed compressed payload (a pax tar stream cut every
// frame-size tar bytes into independent zstd frames, gzip members, or
// plain bytes), the zstd seekable-format seek table at the end of a zstd
// payload, the SHA-256 over the payload, readers that stream a whole
// payload or seek to one frame, the frame list's type (Frame, which the
// catalog and the agent protocol use too) and the one frame decoder
// (FrameDecoder: sizes, decompression, checksums) that every reader of a
// single frame uses, here and in the recover shell. The checksum rule
// (BlockSum, FindSumLine, FindChangedByte) is shared with the taper's
// volume label.
//
// It does not know about volumes, labels, holding-disk layout or the
// catalog: callers place the bytes and remember the frame list. The format
// is written down in docs/format/image.md; every image must restore with
// dd, zstd (or gzip) and GNU tar alone.
package image
