package client

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// The resume state of a client-side encrypted dump (docs/format/
// agent-protocol.md, "Resuming a cut dump"). Besides the walk and the
// checkpoints of every dump with a token, the agent keeps in the dump's
// resume directory:
//
//   - age-key (0600): the age file key and the header (with its nonce)
//     of the image being sent, so that a resume continues the same age
//     file. Whoever reads it reads the image: it lives as long as the
//     resume state (the dump's lifetime, at most ResumeKeep) on the
//     machine that holds the plaintext anyway;
//   - age-state: the encryptor's state at the end of each of the last
//     cryptSlots frames (ciphertext offset and SHA-256 state, and the
//     plaintext of the chunk being filled, < 64 KiB), in a ring of
//     fixed-size slots: about 4 MiB whatever the image's size (66 MiB
//     for the smallest frames).
//
// Each frame end is announced to the server (wire.Checkpoint) once its
// state is saved; the server resumes at the last one it passed on, which
// is at most a few frames behind the agent.

// cryptSlots is how many frame ends of an encrypted dump with frames of
// frameSize tar bytes the agent can resume at: the latest 64, or as many
// as hold 64 MiB of tar when frames are smaller. A resume at an older one
// is refused (the server then starts over); the server resumes at the
// last checkpoint it received, behind the agent by what the connection
// held in flight (socket buffers, proxies: a few MiB).
func cryptSlots(frameSize int) int64 {
	if frameSize <= 0 {
		frameSize = image.DefaultFrameSize
	}
	return max(64, (64<<20+int64(frameSize)-1)/int64(frameSize))
}

// cryptSlotSize holds one record: its framing, the frame count and an
// encryptor state (a SHA-256 state and at most a chunk of plaintext).
const cryptSlotSize = crypt.ChunkSize + 2048

// ok says that the resume state is still being kept.
func (j *journal) ok() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed == nil
}

// saveCryptKey saves the file key and the header of the age file this
// dump sends (fsynced: a checkpoint never names state that is not on
// disk).
func (j *journal) saveCryptKey(fileKey, hdr []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed != nil {
		return
	}
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(fileKey)))
	b = append(b, fileKey...)
	b = append(b, hdr...)
	var rec []byte
	rec = binary.BigEndian.AppendUint32(rec, uint32(len(b)))
	rec = binary.BigEndian.AppendUint32(rec, crc32.Checksum(b, castagnoli))
	rec = append(rec, b...)
	if err := writeFileSync(filepath.Join(j.dir, "age-key"), rec); err != nil {
		j.fail(fmt.Errorf("saving the encryption key of the dump in %s: %w", j.dir, err))
	}
}

// saveCryptState saves the encryptor's state at the end of frame frames-1
// in its slot.
func (j *journal) saveCryptState(frames int64, st crypt.EncState) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed != nil {
		return
	}
	err := func() error {
		if j.cstate == nil {
			f, err := os.OpenFile(filepath.Join(j.dir, "age-state"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			j.cstate = f
		}
		sb, _ := st.MarshalBinary()
		var b []byte
		b = binary.AppendUvarint(b, uint64(frames))
		b = append(b, sb...)
		if 8+len(b) > cryptSlotSize {
			return fmt.Errorf("a state of %d bytes", len(b))
		}
		rec := make([]byte, 8, 8+len(b))
		binary.BigEndian.PutUint32(rec[:4], uint32(len(b)))
		binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(b, castagnoli))
		rec = append(rec, b...)
		_, err := j.cstate.WriteAt(rec, (frames%j.cslots)*cryptSlotSize)
		return err
	}()
	if err != nil {
		j.fail(fmt.Errorf("saving the encryption state of frame %d in %s: %w", frames-1, j.dir, err))
	}
}

// readCryptRecord reads one framed record of at most max bytes.
func readCryptRecord(r io.Reader, max int) ([]byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n > uint32(max) {
		return nil, fmt.Errorf("a record of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if crc32.Checksum(b, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return nil, errors.New("checksum mismatch")
	}
	return b, nil
}

// cryptResume is where an encrypted dump continues: its key, header and
// the encryptor's state at the end of the frames the server holds.
type cryptResume struct {
	fileKey, hdr []byte
	st           crypt.EncState
}

// loadCryptResume reads the encryption state of dir at the end of frame
// frames-1, which must end at plaintext offset plain and ciphertext
// offset cipher (what the server holds), of a dump in frames of
// frameSize tar bytes.
func loadCryptResume(dir string, frameSize int, frames, plain, cipher int64) (*cryptResume, error) {
	slots := cryptSlots(frameSize)
	kf, err := os.Open(filepath.Join(dir, "age-key"))
	if err != nil {
		return nil, fmt.Errorf("its encryption key: %v", err)
	}
	kb, err := readCryptRecord(kf, crypt.MaxHeader+crypt.NonceSize+64)
	kf.Close()
	if err != nil {
		return nil, fmt.Errorf("its encryption key %s is damaged (%v)", filepath.Join(dir, "age-key"), err)
	}
	d := jdec{b: kb}
	cr := &cryptResume{fileKey: d.bytes()}
	if d.err != nil || len(cr.fileKey) != crypt.FileKeySize {
		return nil, fmt.Errorf("its encryption key %s is damaged", filepath.Join(dir, "age-key"))
	}
	cr.hdr = d.b
	sf, err := os.Open(filepath.Join(dir, "age-state"))
	if err != nil {
		return nil, fmt.Errorf("its encryption state: %v", err)
	}
	defer sf.Close()
	sb, err := readCryptRecord(io.NewSectionReader(sf, (frames%slots)*cryptSlotSize, cryptSlotSize), cryptSlotSize-8)
	if err != nil {
		return nil, fmt.Errorf("no encryption state saved at the end of frame %d (%v; this agent keeps the last %d)", frames-1, err, slots)
	}
	d = jdec{b: sb}
	n := int64(d.uvarint())
	if d.err != nil {
		return nil, errors.New("its encryption state is damaged")
	}
	if n != frames {
		return nil, fmt.Errorf("the encryption state at the end of frame %d is no longer kept (this agent keeps the last %d)", frames-1, slots)
	}
	if cr.st, err = crypt.ParseEncState(d.b); err != nil {
		return nil, fmt.Errorf("its encryption state is damaged (%v)", err)
	}
	if cr.st.Plain != plain || cr.st.Cipher != cipher {
		return nil, fmt.Errorf("the server holds %d ciphertext bytes (%d plaintext) after frame %d but this agent's state there is at %d (%d)", cipher, plain, frames-1, cr.st.Cipher, cr.st.Plain)
	}
	// Refused now, before the reply, rather than after it.
	if _, err := crypt.ResumeEncryptor(io.Discard, cr.fileKey, cr.hdr, cr.st); err != nil {
		return nil, fmt.Errorf("its encryption state cannot be continued (%v)", err)
	}
	return cr, nil
}

// checkpointWriter sits between the payload writer and the encryptor of
// a client-side encrypted dump with a resume state: at each frame end
// (the journal's checkpoints say where), it saves the encryptor's state
// and announces the resume point to the server, after the ciphertext it
// covers.
type checkpointWriter struct {
	enc  *crypt.Encryptor
	buf  *bufio.Writer // between the encryptor and the connection
	j    *journal
	send func(wire.Checkpoint) error
	ends []image.Frame // frames announced by the payload writer, not yet ended
}

// frame is the journal's afterCheckpoint: frame f is about to be written.
func (w *checkpointWriter) frame(f image.Frame) { w.ends = append(w.ends, f) }

func (w *checkpointWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := len(p)
		var end int64 = -1
		for len(w.ends) > 0 && w.ends[0].Offset+w.ends[0].Size < w.enc.PlainSize() {
			w.ends = w.ends[1:] // cannot be: the frames are written in order
		}
		if len(w.ends) > 0 {
			end = w.ends[0].Offset + w.ends[0].Size
			if left := end - w.enc.PlainSize(); left < int64(k) && left >= 0 {
				k = int(left)
			}
		}
		m, err := w.enc.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
		if w.enc.PlainSize() == end {
			f := w.ends[0]
			w.ends = w.ends[1:]
			if err := w.checkpoint(int64(f.Index) + 1); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// checkpoint saves the state at the end of frames frames and, once it is
// on disk, tells the server.
func (w *checkpointWriter) checkpoint(frames int64) error {
	if !w.j.ok() {
		return nil // no resume for this dump: the server holds the rest
	}
	st, err := w.enc.State()
	if err != nil {
		return err
	}
	w.j.saveCryptState(frames, st)
	if !w.j.ok() {
		return nil
	}
	if err := w.buf.Flush(); err != nil {
		return err
	}
	return w.send(wire.Checkpoint{Frames: frames, Plain: st.Plain, Cipher: st.Cipher})
}
