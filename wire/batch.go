package wire

import (
	"bufio"
	"net"
	"sync"
)

// BatchSize is how many bytes a BatchConn gathers before it writes, and
// the most it reads ahead.
const BatchSize = 256 << 10

// BatchConn is the TCP connection under a tls.Conn that carries a bulk
// stream (a dump). TLS cuts what it sends into records of at most 16 KiB
// and writes each with its own write(2); on loopback or a fast LAN those
// system calls, and the receiver's one read(2) per record, cost more CPU
// than the encryption. A BatchConn reads ahead up to BatchSize bytes
// (from the start: a read never waits for more than the kernel already
// has), and, once Batch was called (after the handshake, whose messages
// must not wait), gathers the records written to it and writes them when
// BatchSize bytes are waiting or when the Conn above it flushes (a Conn
// made by NewBatchedConn flushes it with its own buffer: whatever waits
// for the peer's answer goes out first). Close closes the connection
// without writing what waits: a Conn's user flushes before it closes, as
// it must already for the Conn's own buffer.
type BatchConn struct {
	net.Conn
	r  *bufio.Reader
	mu sync.Mutex
	w  *bufio.Writer // nil until Batch
}

// NewBatchConn wraps c; hand the result to tls.Server or tls.Client.
func NewBatchConn(c net.Conn) *BatchConn {
	return &BatchConn{Conn: c, r: bufio.NewReaderSize(c, BatchSize)}
}

// Read reads from the read-ahead buffer.
func (b *BatchConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Batch starts gathering writes; call it after the TLS handshake.
func (b *BatchConn) Batch() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w == nil {
		b.w = bufio.NewWriterSize(b.Conn, BatchSize)
	}
}

// Write sends p, or gathers it after Batch.
func (b *BatchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w == nil {
		return b.Conn.Write(p)
	}
	return b.w.Write(p)
}

// Flush writes what was gathered.
func (b *BatchConn) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w == nil {
		return nil
	}
	return b.w.Flush()
}
