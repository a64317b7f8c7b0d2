package wire

import (
	"encoding/binary"
	"fmt"
)

// Checkpoint is a resume point of a client-side encrypted dump, sent in a
// FrameCheckpoint frame after the ciphertext it covers: Frames whole
// frames end at plaintext offset Plain of the age file, and the agent can
// continue the age file from ciphertext offset Cipher (the age header and
// the whole chunks before Plain), having saved its encryptor's state
// there. The server passes on ciphertext only up to the last Cipher it
// was told, and resumes there (docs/format/agent-protocol.md, "Resuming
// a cut dump").
type Checkpoint struct {
	Frames, Plain, Cipher int64
}

// AppendCheckpoint appends the encoding of c: three uvarints.
func AppendCheckpoint(b []byte, c Checkpoint) []byte {
	b = binary.AppendUvarint(b, uint64(c.Frames))
	b = binary.AppendUvarint(b, uint64(c.Plain))
	return binary.AppendUvarint(b, uint64(c.Cipher))
}

// maxCheckpointValue bounds each number of a checkpoint (far above any
// image: 2^62 bytes).
const maxCheckpointValue = 1 << 62

// DecodeCheckpoint reads a FrameCheckpoint frame's bytes: exactly one
// checkpoint.
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	var v [3]int64
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 || x > maxCheckpointValue {
			return Checkpoint{}, fmt.Errorf("%w: a checkpoint record that is truncated or out of range", ErrProtocol)
		}
		v[i] = int64(x)
		b = b[n:]
	}
	if len(b) != 0 {
		return Checkpoint{}, fmt.Errorf("%w: %d stray bytes after a checkpoint record", ErrProtocol, len(b))
	}
	return Checkpoint{Frames: v[0], Plain: v[1], Cipher: v[2]}, nil
}
