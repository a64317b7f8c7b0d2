// Package fakest is a fake Linux SCSI tape drive for tests and benchmarks:
// a Go model of the st driver in variable-block mode, reachable two ways.
//
//   - In memory: Drive.Open returns a Handle with the syscall-level methods
//     of an open /dev/nst0 (Read, Write, Op for MTIOCTOP, Status for
//     MTIOCGET, Pos for MTIOCPOS, Close). Errors are the errnos st returns.
//   - Through FUSE: Mount (tests) or Drive.Mount (programs) exposes the same
//     model as the files nst0 and st0 of a FUSE file system, so the code
//     under test uses the real open, read, write, ioctl and close system
//     calls. The restricted FUSE ioctls carry MTIOCTOP, MTIOCGET and
//     MTIOCPOS because their numbers encode their sizes. A third file, ctl,
//     takes operator commands ("insert NAME", "eject", "remove") so that a
//     script, for example a fake mtx, can change cartridges.
//
// NewDrives (MountDrives in tests) makes the drives of a library: they
// share one shelf of cartridges and one lock, and a cartridge is in at
// most one of them at a time, so that a cartridge written in one drive
// reads the same in another. Library is a fake mtx (a shell script) over
// a library with any number of drives (NewLibraryDrives); with the ctl file
// of each mounted drive in its environment (EnvDrives: FAKE_MTX_CTL0,
// FAKE_MTX_CTL1, ...; FAKE_MTX_CTL alone is drive 0) a load really inserts
// the cartridge into that drive.
//
// The model keeps several cartridges (objects: records and filemarks) and
// follows st where a taper can see it: one write is one record; a read
// returns one record (ENOMEM when the buffer is too small, having moved past
// it); a filemark reads as 0 bytes once, blank tape after a filemark as 0
// bytes once more, then EIO; early warning as st reports it (the crossing
// write succeeds, the next one gets ENOSPC, then success and ENOSPC
// alternate, every write gets ENOSPC at the physical end); MTIOCGET bits and
// file/block numbers (-1 where st does not know them); MTIOCPOS logical
// object numbers; a filemark on close after writing, and a rewind on close
// for st0; one open at a time (EBUSY); EROFS, EACCES and ENOMEDIUM where st
// returns them. Test hooks change capacity, write protection and
// cartridges, stall writes, inject I/O errors (at a spot on the tape with
// InjectError; at the nth call of an MTIOCTOP operation with FailOp, where a
// failed MTSEEK stops halfway; MTIOCPOS alone with SetPosition), record a
// trace of MTIOCTOP calls (Trace) and expose what was written.
// For benchmarks, Options.Discard keeps record sizes only and Options.Rate
// gives the drive a streaming speed.
//
// Through FUSE the kernel reports every close(2) of every descriptor, not
// only the last one as st sees it: the model writes the filemark of a
// close after writing when the process that opened the drive closes a
// descriptor (closes by other processes, such as the children of a fork and
// exec, are ignored), and rewinds st0 and frees the drive at the last close.
//
// Only variable-block mode is modelled: MTSETBLK with a non-zero size is
// accepted but reads and writes then fail with EINVAL. Through FUSE, keep
// records at 1 MiB or less (the kernel splits larger writes into several
// requests, which would become several records) and read with buffers of at
// most 1 MiB.
package fakest
