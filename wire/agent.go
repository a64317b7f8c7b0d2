package wire

// Messages of the agent protocol (docs/format/agent-protocol.md). The
// server opens one mutual-TLS connection per request to a client agent
// (TCP 10080), sends one Request, and reads one Reply. For a dump the
// Reply is followed by data, index and warning frames and a final Done.

// Request operations.
const (
	OpSelfcheck = "selfcheck"
	OpEstimate  = "estimate"
	OpDump      = "dump"
	// OpConfirm delivers the Confirm of a dump whose connection broke
	// after Done (Request.Token and Request.SHA256 name it).
	OpConfirm = "confirm"
)

// MaxTokenLen bounds Request.Token; a token is 16 to 64 characters of
// [0-9a-f].
const MaxTokenLen = 64

// Limits of the agent protocol (docs/format/agent-protocol.md, "Limits")
// besides MaxFrame: the server keeps at most MaxWarnings warnings (W
// frames) of one dump, each cut to MaxWarningLen bytes, and counts the
// rest in one last warning.
const (
	MaxWarnings   = 1000
	MaxWarningLen = 4096
)

// Request is what the server asks of an agent.
type Request struct {
	Op            string   `json:"op"`
	DLE           string   `json:"dle,omitempty"`    // absolute path on the client
	Level         int      `json:"level,omitempty"`  // dump: the level
	Levels        []int    `json:"levels,omitempty"` // estimate: the levels to size
	Datestamp     string   `json:"datestamp,omitempty"`
	Compress      string   `json:"compress,omitempty"` // "zst", "gz" or "none"
	CompressLevel int      `json:"compress_level,omitempty"`
	FrameSize     int      `json:"frame_size,omitempty"`
	Exclude       []string `json:"exclude,omitempty"`
	ExcludeList   []string `json:"exclude_list,omitempty"` // files on the client, one pattern per line
	OneFilesystem bool     `json:"one_filesystem,omitempty"`
	Bandwidth     int64    `json:"bandwidth,omitempty"` // payload bytes per second; 0 = unlimited
	// Encrypt is "age" when the agent must encrypt the payload to
	// Recipients (age1… strings): client-side encryption. The frame
	// records are then in the plaintext of the age file; Done's sizes and
	// SHA-256 are of the ciphertext sent.
	Encrypt    string   `json:"encrypt,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
	// Listings asks the agent to send the directory listings of a level >
	// 0 dump (GNU.dumpdir of every directory, in FrameListing frames): the
	// server cannot read them from an image the client encrypts. Only
	// asked of an agent with the "listings" feature (an older agent
	// refuses the unknown field).
	Listings bool `json:"listings,omitempty"`
	// Token names one dump of this DLE across its connections: an agent
	// with the "resume" feature keeps the walk and the checkpoints of
	// every frame under it (client.ResumeStore) until the dump is over,
	// so that a cut stream continues where it stopped. Only sent to an
	// agent that can resume (an older one refuses the unknown field).
	Token string `json:"token,omitempty"`
	// Resume, with Token, asks the agent to continue the dump Token names
	// after what the server holds, instead of starting it.
	Resume *Resume `json:"resume,omitempty"`
	// SHA256 is the image's SHA-256 in an OpConfirm request.
	SHA256 string `json:"sha256,omitempty"`
}

// Resume is what the server holds of a cut dump: Frames whole frames
// (zstd frames, or frame_size bytes of an uncompressed payload) making
// PayloadOffset bytes of payload, written and hashed on the holding disk
// (or handed to the taper); Index index records and Listings listing
// records already received. The agent answers with a Reply whose Resumed
// must say the same frame and payload offset, or refuses.
type Resume struct {
	Frames        int64 `json:"frames"`
	PayloadOffset int64 `json:"payload_offset"`
	Index         int64 `json:"index"`
	Listings      int64 `json:"listings"`
	// CipherOffset, for a client-side encrypted dump, is the ciphertext
	// the server holds (the age header and the whole chunks before the
	// checkpoint of frame Frames); PayloadOffset is then in the
	// plaintext of the age file.
	CipherOffset int64 `json:"cipher_offset,omitempty"`
}

// Resumed is the agent's side of a Resume: the frame after which its
// payload continues, at which tar and payload offsets.
type Resumed struct {
	Frames        int64 `json:"frames"`
	TarOffset     int64 `json:"tar_offset"`
	PayloadOffset int64 `json:"payload_offset"`
	// CipherOffset repeats Resume.CipherOffset: the ciphertext byte the
	// encrypted stream continues with.
	CipherOffset int64 `json:"cipher_offset,omitempty"`
	// Resent is how many payload bytes past PayloadOffset the agent had
	// sent on the connection this one replaces (they are sent again); -1
	// when it does not know (it was restarted). Informational: the
	// report's figure.
	Resent int64 `json:"resent"`
}

// Reply answers a Request; for a dump it precedes the stream.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Version and Features answer a selfcheck and a dump request (the
	// server refuses to take a client-side encrypted dump from an agent
	// without the "age" feature).
	Version   string     `json:"version,omitempty"`
	Features  []string   `json:"features,omitempty"`
	Estimates []Estimate `json:"estimates,omitempty"`
	// Selfcheck: what the agent found about the DLE and its state
	// directory; each entry is a problem a person must fix.
	Problems []string `json:"problems,omitempty"`
	// Selfcheck: the levels with a current incremental state.
	StateLevels []int `json:"state_levels,omitempty"`
	// Resumed answers a dump request with Resume: where the stream that
	// follows continues.
	Resumed *Resumed `json:"resumed,omitempty"`
}

// Estimate is the expected size of a dump at one level.
type Estimate struct {
	Level int   `json:"level"`
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
}

// Done ends a dump stream. Error is set when the agent gave up; the
// payload received so far must then be discarded.
type Done struct {
	Error       string `json:"error,omitempty"`
	OrigSize    int64  `json:"orig_size"`
	PayloadSize int64  `json:"payload_size"`
	SHA256      string `json:"sha256"`
	Files       int64  `json:"files"`
	Frames      int64  `json:"frames"` // how many frame records were sent in FrameFrames frames
}

// Confirm is the server's last word on a dump, sent after Done: OK when
// the image is safe on the holding disk (size and SHA-256 checked, file
// synced). Only then does the agent promote the incremental state it
// wrote for this dump; the agent answers with a Reply.
type Confirm struct {
	OK     bool   `json:"ok"`
	SHA256 string `json:"sha256"`          // must equal Done.SHA256
	Error  string `json:"error,omitempty"` // why the server rejected the image
}
