// Package holding owns the holding disks: the spool directories where
// images wait between the dumpers and the taper.
//
//   - CheckDisk: a holding disk's directory must exist; tapir creates
//     the run directories inside it, never the disk (an unmounted disk is
//     reported, not silently replaced on the root filesystem).
//   - Pool accounts the space of all holding disks of a run: every byte is
//     reserved before it is written (Space), fulls are held to the share
//     the reserve leaves them in degraded mode (FullLimit, exact
//     arithmetic), and writers that all wait for space that only they hold
//     are told which one gives up (ErrHoldingFull), so no run deadlocks.
//   - Writer writes one image as <disk>/<datestamp>/<stem>[.<k>] chunk
//     files named .tmp while written; Prepare checks size and SHA-256,
//     writes the header and fsyncs, the caller records the image in the
//     catalog, and Commit gives the chunks their final names. So a file
//     without .tmp is always a complete image the catalog knows.
//   - OpenImage reads an image back across its chunks (as a stream or at
//     any offset); Verify checks it end to end; Scan lists what is on the
//     disks (complete, damaged, .tmp, and later chunks whose first chunk
//     is gone); Salvage finishes a commit a crash interrupted; Remove
//     deletes (the first chunk last).
//
// The format is written down in docs/format/holding.md.
package holding
