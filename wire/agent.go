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
	// Snapshot, for a dump, asks the agent to make a snapshot of the DLE
	// right before the walk, dump from it (the image's names stay the
	// DLE's) and remove it in every case; for a selfcheck, to prove it
	// can (make one and remove it). Only sent to an agent with the
	// feature "snapshot-" + Kind.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
	// Command makes the DLE a command DLE: the payload is the standard
	// output of this argv run on the client (no shell; Command[0] an
	// absolute path the agent's --allow-exec permits), framed and hashed
	// like any image, with no index records. DLE is then the DLE's name
	// (an absolute, clean path that is not read). Level 0 only. Only sent
	// to an agent with the feature "command".
	Command []string `json:"command,omitempty"`
	// Pre and Post are commands (argv, no shell, [0] permitted by
	// --allow-exec) run on the agent before the snapshot and walk of a
	// dump, and after it in every case once Pre ran. A failing Pre fails
	// the dump; a failing Post makes it STRANGE. Each is bounded by
	// HookTimeout seconds (0: 300). Only sent to an agent with the
	// feature "hooks".
	Pre         []string `json:"pre,omitempty"`
	Post        []string `json:"post,omitempty"`
	HookTimeout int      `json:"hook_timeout,omitempty"`
}

// Snapshot kinds (Snapshot.Kind).
const (
	SnapshotBtrfs   = "btrfs"
	SnapshotLVM     = "lvm"
	SnapshotZFS     = "zfs"
	SnapshotCommand = "command"
)

// Snapshot says how the agent makes a DLE consistent before a dump.
type Snapshot struct {
	Kind string `json:"kind"`
	// Size is the copy-on-write space of an LVM snapshot (lvcreate -L or
	// -l: "2G", "20%ORIGIN").
	Size string `json:"size,omitempty"`
	// Create and Remove, for the kind "command", are run with
	// TAPIR_DLE, TAPIR_SNAPSHOT_ID and TAPIR_SNAPSHOT_DIR (an empty
	// directory the agent made) in the environment: Create must make the
	// DLE's consistent content appear at TAPIR_SNAPSHOT_DIR (a mount, a
	// bind mount, a copy), Remove undo it and must succeed when there is
	// nothing left to undo.
	Create []string `json:"create,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// HookRun is what one command the agent ran for a dump did: a pre or post
// hook, the creation or removal of a snapshot, a command DLE's command.
type HookRun struct {
	// Name is "pre", "post", "snapshot-create", "snapshot-remove" or
	// "command".
	Name string `json:"name"`
	// Command is the argv (or, for btrfs, lvm and zfs, the tool's command
	// line the agent ran), one line.
	Command string `json:"command"`
	// Exit is the exit status; -1 when it did not start, was killed at
	// its timeout or by a cancelled dump (Error says which).
	Exit    int     `json:"exit"`
	Seconds float64 `json:"seconds"`
	// Output is the tail of its standard output and error (standard
	// error only for a command DLE, whose standard output is the
	// payload), at most MaxHookOutput bytes.
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// MaxHookOutput bounds HookRun.Output; MaxHookRuns the runs of one Done.
const (
	MaxHookOutput = 4096
	MaxHookRuns   = 8
)

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
	// Hooks are the commands the agent ran for this dump (hooks, snapshot,
	// command), in order, failed or not: the report shows them.
	Hooks []HookRun `json:"hooks,omitempty"`
	// Snapshot names the snapshot the image was read from ("btrfs
	// /home/.tapir-snapshot"), empty when it was read live.
	Snapshot string `json:"snapshot,omitempty"`
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
