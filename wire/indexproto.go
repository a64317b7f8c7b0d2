package wire

import (
	"encoding/binary"
	"fmt"
)

// Messages of the index protocol (docs/format/index-protocol.md): a recover
// shell talks to the index server on TCP 10082 over mutual TLS. The shell
// sends one IndexRequest at a time; the server answers with one
// IndexReply, which for "ls", "find" and "restore" is followed by more
// frames. Every error is an IndexReply with OK false and Error set to a
// sentence the shell prints as it is.

// Index protocol operations.
const (
	IdxHello    = "hello"    // who am I to the server
	IdxListHost = "listhost" // hosts with images
	IdxListDisk = "listdisk" // DLEs of a host
	IdxHistory  = "history"  // images of a DLE
	IdxView     = "view"     // the chain of images at a date
	IdxLs       = "ls"       // a directory of the view: Reply + entry frames
	IdxStat     = "stat"     // one path of the view
	IdxFind     = "find"     // paths of the view matching a pattern: Reply + entry frames
	IdxPlan     = "plan"     // what a restore of Paths needs (images, volumes)
	IdxRestore  = "restore"  // Reply (the plan) + entry frames + chunks + RestoreEnd
	// IdxFetch is asked by another tapir server of the catalog (a
	// certificate with the role tapir-server): payload bytes of one image
	// (Dump, Ranges) on a volume or holding disk of this server. Reply +
	// FetchMsg frames, each Data one followed by that many bytes.
	IdxFetch = "fetch"
)

// IndexVersion is the protocol version the server announces in hello.
const IndexVersion = 1

// Limits of the index protocol (docs/format/index-protocol.md, "Limits").
// A request over one of them gets an error reply saying which and what to
// do instead.
const (
	// MaxIndexRequest is the most bytes of one request frame the index
	// server reads; a longer one ends the session with an error reply.
	MaxIndexRequest = 1 << 20
	// MaxRequestPaths is the most paths one plan or restore request may
	// name (a directory counts as one: everything under it comes along).
	MaxRequestPaths = 50_000
	// MaxListEntries is the most entries an ls reply holds: a larger
	// directory is refused (find narrows it, add takes it whole).
	MaxListEntries = 500_000
	// MaxFindLimit is the most entries a find reply holds.
	MaxFindLimit = 100_000
	// MaxPlanEntries is the most entries one plan or restore may select.
	MaxPlanEntries = 5_000_000
	// MaxReplyEntries is the most entry records any reply announces.
	MaxReplyEntries = MaxPlanEntries
	// MaxFetchRanges is the most payload ranges one fetch names, and
	// MaxFetchRange the most bytes of one range (a frame, or the age
	// chunks of a sealed one, is far smaller).
	MaxFetchRanges = 4096
	MaxFetchRange  = 256 << 20
	// FetchPiece is the most bytes a fetch stream announces in one Data
	// message: the server reads a piece whole before it announces it, so
	// that a read that fails is an Error message, never a short piece.
	FetchPiece = 1 << 20
)

// IndexRequest is what a shell asks. Host, DLE and Date select the view
// (Date: a datestamp prefix YYYY[MM[DD[hh[mm[ss]]]]], "" for the newest).
type IndexRequest struct {
	Op      string   `json:"op"`
	Host    string   `json:"host,omitempty"`
	DLE     string   `json:"dle,omitempty"`
	Date    string   `json:"date,omitempty"`
	Path    string   `json:"path,omitempty"`    // ls: a directory; stat: a path (relative to the DLE)
	Pattern string   `json:"pattern,omitempty"` // find
	Limit   int      `json:"limit,omitempty"`   // find: at most this many (0: the server's limit)
	Paths   []string `json:"paths,omitempty"`   // plan, restore: the selection (files and directories)
	// fetch: the image (its catalog id, with Host and DLE, which must be
	// the image's) and the payload ranges wanted, in the order they are
	// sent back.
	Dump   int64   `json:"dump,omitempty"`
	Ranges []Range `json:"ranges,omitempty"`
}

// Range is Len payload bytes of an image from offset Off (offset 0 is the
// first byte after the image header).
type Range struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
}

// FetchMsg is a message frame of a fetch stream: exactly one field is set.
// Data announces the next Data bytes of the ranges asked for (at most
// FetchPiece; the ranges' bytes come in order, concatenated), which follow
// in data frames. Where says what the server reads from (a volume and tape
// file, or its holding disk), Ask that it waits for a person to bring a
// volume (the asking server passes it on to its shell). Error ends the
// stream: what was not sent cannot be read, and why. End ends it after the
// last byte.
type FetchMsg struct {
	Data  int64  `json:"data,omitempty"`
	Where string `json:"where,omitempty"`
	Ask   string `json:"ask,omitempty"`
	Error string `json:"error,omitempty"`
	End   bool   `json:"end,omitempty"`
}

// IndexReply answers an IndexRequest.
type IndexReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`

	// hello
	Version int      `json:"version,omitempty"`
	Peer    string   `json:"peer,omitempty"`  // the host named in the shell's certificate
	Roles   []string `json:"roles,omitempty"` // its roles
	Admin   bool     `json:"admin,omitempty"` // may browse every host

	Hosts []string `json:"hosts,omitempty"` // listhost
	DLEs  []string `json:"dles,omitempty"`  // listdisk

	Images []ImageInfo `json:"images,omitempty"` // history, view (the chain, full first), plan, restore
	Entry  *EntryInfo  `json:"entry,omitempty"`  // stat

	Count int  `json:"count,omitempty"` // ls, find, restore: entry records that follow
	More  bool `json:"more,omitempty"`  // find: the limit cut the list

	// plan, restore: the volumes the restore loads, in the order it loads
	// them (Images come in the order they are read: the holding disk
	// first, then one forward pass per volume).
	Needed []string `json:"needed,omitempty"`
}

// ImageInfo describes one image (dump).
type ImageInfo struct {
	Datestamp   string       `json:"datestamp"`
	Level       int          `json:"level"`
	Status      string       `json:"status"` // good or holding (history: any)
	Comp        string       `json:"comp,omitempty"`
	FrameSize   int64        `json:"frame_size,omitempty"`
	OrigSize    int64        `json:"orig_size,omitempty"`
	PayloadSize int64        `json:"payload_size,omitempty"`
	Files       int64        `json:"files,omitempty"`
	Volumes     []VolumeNeed `json:"volumes,omitempty"`
	Holding     bool         `json:"holding,omitempty"` // read from the holding disk
	// plan, restore: how many selected entries, frames and payload bytes
	// come from this image.
	Entries int   `json:"entries,omitempty"`
	Frames  int   `json:"frames,omitempty"`
	Bytes   int64 `json:"bytes,omitempty"`
	// Encryption is "age" for an encrypted payload (absent: none), and
	// Recipients the fingerprints of the keys it is encrypted to.
	// CryptHeader (plan and restore replies) is the payload's age header
	// and nonce, from the catalog: the shell unwraps the payload key from
	// it with its identity before anything is written. All three are
	// absent for a plain image, whose reply is what it always was.
	Encryption  string   `json:"encryption,omitempty"`
	Recipients  []string `json:"recipients,omitempty"`
	CryptHeader []byte   `json:"crypt_header,omitempty"`
	// Payload is "command" for the image of a command DLE (its payload
	// is a command's output, not a tar stream: nothing to browse);
	// absent for a tar image.
	Payload string `json:"payload,omitempty"`
}

// IsCommand reports whether the image holds a command's output.
func (im ImageInfo) IsCommand() bool { return im.Payload == "command" }

// Encrypted reports whether the image's payload is encrypted.
func (im ImageInfo) Encrypted() bool { return im.Encryption != "" && im.Encryption != "none" }

// VolumeNeed is a volume an image has a part on.
type VolumeNeed struct {
	Label     string `json:"label"`
	Where     string `json:"where,omitempty"`   // e.g. "slot 3"
	Missing   string `json:"missing,omitempty"` // why it cannot be read now, and what to do
	Available bool   `json:"available"`
}

// EntryInfo is one entry of a view (stat, ls and find records, restore
// plan records).
type EntryInfo struct {
	Path  string `json:"path"` // relative to the DLE root (ls: the name only)
	Type  byte   `json:"type"` // tar typeflag
	Image int    `json:"image"`
	Size  int64  `json:"size,omitempty"`
	Mode  uint32 `json:"mode,omitempty"`
	Mtime int64  `json:"mtime,omitempty"` // Unix nanoseconds
	UID   int    `json:"uid,omitempty"`
	GID   int    `json:"gid,omitempty"`
	Link  string `json:"link,omitempty"`
	// restore plan records: where the entry is in its image's tar stream,
	// and the name the entry has there (Source) when it is restored under
	// another name (a hard link restored from its target's data).
	TarOffset int64  `json:"tar_offset,omitempty"`
	Span      int64  `json:"span,omitempty"`
	Source    string `json:"source,omitempty"`
}

// IsDir reports whether the entry is a directory.
func (e EntryInfo) IsDir() bool { return e.Type == '5' || e.Type == 'D' }

// Chunk announces one compressed frame of a restore: Size payload bytes
// follow in data frames. The frame decompresses to tar bytes
// [TarOffset, TarOffset+TarSize) of image Image (index in the plan).
type Chunk struct {
	Image     int   `json:"image"`
	Frame     int   `json:"frame"`
	TarOffset int64 `json:"tar_offset"`
	TarSize   int64 `json:"tar_size"`
	Size      int64 `json:"size"`
}

// Sealed announces one frame of an encrypted image: Cipher bytes of age
// ciphertext follow in data frames. The embedded Chunk describes the frame
// as a plain chunk does (Size: its stored bytes, in the plaintext of the
// payload); Offset is where those bytes start in the plaintext. The bytes
// that follow are the ciphertext of the age chunks that hold plaintext
// [Offset, Offset+Size) (crypt.Layout.Span), except, when Carry is set,
// their first chunk: it is the last chunk of the sealed message before,
// of the same image, which the shell keeps, so that a chunk shared by two
// frames in a row crosses the network once.
type Sealed struct {
	Chunk
	Offset int64 `json:"offset"`
	Carry  bool  `json:"carry,omitempty"`
	Cipher int64 `json:"cipher"`
}

// RestoreMsg is a message frame within a restore stream: exactly one of
// Chunk, Sealed, Image, Ask and End is set.
type RestoreMsg struct {
	Chunk  *Chunk      `json:"chunk,omitempty"`
	Sealed *Sealed     `json:"sealed,omitempty"`
	Image  *ImageStart `json:"image,omitempty"`
	Ask    *VolumeAsk  `json:"ask,omitempty"`
	End    *RestoreEnd `json:"end,omitempty"`
}

// VolumeAsk asks the person at the shell for a volume the restore needs
// now (a single drive): Msg says which and where to put it ("insert
// volume T-002 into /dev/nst0"), or what is wrong with the one they
// inserted, or reminds them. The server waits for the volume with no
// deadline: the stream goes on when it is there, and the shell cancels the
// wait by closing the connection.
type VolumeAsk struct {
	Msg string `json:"msg"`
}

// ImageStart says where the server reads image Image from (Where: a
// volume and tape file, or a holding file; sent again when it moves on to
// the next volume of a spanning image), or, with Error set, that the image
// cannot be sent (any of its chunks already sent are void: the shell
// discards what it restored from it). The server then goes on with the
// next image.
type ImageStart struct {
	Image int    `json:"image"`
	Where string `json:"where,omitempty"`
	Error string `json:"error,omitempty"`
}

// RestoreEnd closes a restore stream.
type RestoreEnd struct{}

// MaxEntryBatch is the most bytes of entry records put in one frame.
const MaxEntryBatch = 1 << 20

// AppendEntry appends the binary encoding of e to b (entry frames of ls,
// find and restore: FrameIndex frames holding a run of these).
func AppendEntry(b []byte, e EntryInfo) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.Path)))
	b = append(b, e.Path...)
	b = append(b, e.Type)
	b = binary.AppendUvarint(b, uint64(e.Image))
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendVarint(b, e.Mtime)
	b = binary.AppendVarint(b, int64(e.UID))
	b = binary.AppendVarint(b, int64(e.GID))
	b = binary.AppendUvarint(b, uint64(len(e.Link)))
	b = append(b, e.Link...)
	b = binary.AppendVarint(b, e.TarOffset)
	b = binary.AppendVarint(b, e.Span)
	b = binary.AppendUvarint(b, uint64(len(e.Source)))
	return append(b, e.Source...)
}

// DecodeEntries decodes a frame of entry records written by AppendEntry.
func DecodeEntries(b []byte, fn func(EntryInfo) error) error {
	d := decoder{b: b, all: string(b)}
	for len(d.b) > 0 {
		var e EntryInfo
		e.Path = d.str()
		e.Type = d.byte1()
		img := d.uvarint()
		e.Size = d.varint()
		mode := d.uvarint()
		e.Mtime = d.varint()
		e.UID = int(d.varint())
		e.GID = int(d.varint())
		e.Link = d.str()
		e.TarOffset = d.varint()
		e.Span = d.varint()
		e.Source = d.str()
		if d.err != nil {
			return fmt.Errorf("%w: entry record %d: %v", ErrProtocol, d.n, d.err)
		}
		if e.Path == "" || img > 1<<20 || mode > 0o7777 || e.Size < 0 || e.TarOffset < 0 || e.Span < 0 {
			return fmt.Errorf("%w: entry record %d (%q): empty path or value out of range", ErrProtocol, d.n, e.Path)
		}
		e.Image, e.Mode = int(img), uint32(mode)
		d.n++
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// WriteEntries sends entries as FrameIndex frames of at most MaxEntryBatch
// bytes each (without flushing).
func (c *Conn) WriteEntries(es []EntryInfo) error {
	return c.WriteEntriesFunc(len(es), func(i int) EntryInfo { return es[i] })
}

// WriteEntriesFunc sends the n entries get returns, as WriteEntries does.
func (c *Conn) WriteEntriesFunc(n int, get func(i int) EntryInfo) error {
	b := make([]byte, 0, MaxEntryBatch+4096)
	for i := range n {
		b = AppendEntry(b, get(i))
		if len(b) >= MaxEntryBatch {
			if err := c.WriteFrame(FrameIndex, b, false); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	if len(b) > 0 {
		return c.WriteFrame(FrameIndex, b, false)
	}
	return nil
}

// ReadEntries reads entry frames until count entries have arrived. A count
// below 0 or above MaxReplyEntries is a protocol error.
func (c *Conn) ReadEntries(count int, fn func(EntryInfo) error) error {
	if count < 0 || count > MaxReplyEntries {
		return fmt.Errorf("%w: a reply announces %d entry records; the protocol allows 0 to %d", ErrProtocol, count, MaxReplyEntries)
	}
	got := 0
	for got < count {
		typ, b, err := c.ReadFrame()
		if err != nil {
			return err
		}
		if typ != FrameIndex {
			return fmt.Errorf("%w: expected entry records (%d of %d read), got frame %q", ErrProtocol, got, count, typ)
		}
		if err := DecodeEntries(b, func(e EntryInfo) error {
			got++
			if got > count {
				return fmt.Errorf("%w: more entry records than the %d announced", ErrProtocol, count)
			}
			return fn(e)
		}); err != nil {
			return err
		}
	}
	return nil
}
