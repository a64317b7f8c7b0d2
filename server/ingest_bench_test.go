package server

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// ingestPayload is a zstd payload of about 64 MiB of tar (2,000 files,
// half text, half random) and its index records, as an agent sends them.
func ingestPayload(b testing.TB) ([]byte, []wire.IndexRecord) {
	b.Helper()
	var payload bytes.Buffer
	pw, err := image.NewPayloadWriter(&payload, image.WriterOptions{Comp: image.CompZstd, Level: 1, FrameSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	cw := &countWriter{w: pw}
	tw := tar.NewWriter(cw)
	r := rand.New(rand.NewPCG(1, 2))
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 0), Format: tar.FormatPAX})
	var recs []wire.IndexRecord
	for i := range 2000 {
		body := make([]byte, 32<<10)
		if i%2 == 0 {
			for j := range body {
				body[j] = byte(r.Uint32())
			}
		} else {
			copy(body, bytes.Repeat([]byte(fmt.Sprintf("line %d of a log file\n", i)), len(body)))
		}
		name := fmt.Sprintf("d%03d/f%05d", i/100, i)
		off := (cw.n + 511) &^ 511
		tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1e9, 0), Format: tar.FormatPAX})
		tw.Write(body)
		recs = append(recs, wire.IndexRecord{Path: name, Type: tar.TypeReg, TarOffset: off})
	}
	tw.Close()
	pw.Close()
	return payload.Bytes(), recs
}

// BenchmarkIngest compares the server's check of a dump as it flows
// (decompress, read the tar stream, match the index) with decompressing
// alone (bench/ingest.sh prints the ratio).
func BenchmarkIngest(b *testing.B) {
	payload, recs := ingestPayload(b)
	b.Run("decode-only", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			dec, _ := zstd.NewReader(bytes.NewReader(payload), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
			io.Copy(io.Discard, dec)
			dec.Close()
		}
	})
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			in := newIngest(image.CompZstd)
			for _, rec := range recs {
				in.Record(rec)
			}
			for off := 0; off < len(payload); off += 1 << 20 {
				in.Write(payload[off:min(off+1<<20, len(payload))])
			}
			if err := in.Finish(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
