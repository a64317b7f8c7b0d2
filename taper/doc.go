// Package taper owns the volumes: the Device seam that every tape driver
// sits behind, the virtual-tape driver (a directory per volume, one regular
// file per tape file), the SCSI tape driver (Tape: /dev/nstN through the
// st driver's mtio ioctls, wrapped so that no call can issue MTRESET),
// volume labels (file 0 of every volume, with their own checksum: a damaged
// label makes the volume unreadable, never blank or foreign), the Changer
// seam and its changers (`disk`: a directory of slot directories, which
// must exist and can also erase the volume of a slot after reading its
// label; `single`: one drive and a person who changes cartridges; `robot`:
// a SCSI media changer through mtx), ChooseVolume, the pure rule that
// decides which volume a run may write so that a volume still inside
// tapecycle or holding a DLE's newest chain is never overwritten (and
// AtRisk, its look-ahead for the planner), and the Scribe, which writes an
// image as parts across volumes and names the tape files a failed write
// leaves behind (WriteError) so that the caller records them as failed.
//
// A changer may have several drives that tapir uses at once, one taper
// each: NewDiskChangers (vtape drives sharing the slot directories) and
// NewRobotChangers (drives of one library, sharing one mtx lock, the
// labels learned and the state file) return one Changer per drive, a view
// of the same slots. Each view loads, ejects and closes only its own
// drive; the inventory is the whole library's, the same from every view;
// a slot whose volume one view holds open (loaded, not ejected) is
// refused to the others with an error matching ErrInOtherDrive, so that a
// volume is never open in two drives, and a robot puts back a volume an
// earlier run left in another of tapir's drives before loading it.
// Properties says how many drives the group has and which one a view is.
//
// Every Changer method that may move a volume, run mtx or wait for a
// person takes a ctx and stops when it ends. What a changer or a device can
// do is declared (Changer.Properties, Device.Properties), never discovered
// by type assertions: a method a changer does not declare fails with
// ErrNotSupported. taper/changertest is the conformance suite every changer
// and every wrapper passes; taper/fakest is a fake st drive (a FUSE file
// with the st ioctls; several that share their cartridges, as in a
// library) and a fake mtx with any number of drives for tests; taper/taptest wraps a
// changer whose drive stalls or fails on purpose.
//
// The tape model is the Linux st driver in variable-block mode: a volume is a
// sequence of files separated by filemarks, each file a sequence of records
// (one write = one record). File 0 is the label. Writing is allowed only at
// the end of data or from the beginning of the volume (which erases it).
// Positions are (file, record) plus the drive's logical block number.
//
// Nothing here knows about clients or the catalog, and of images only what
// the Scribe needs to write one (package image: the header it puts at the
// start of each part, and the block checksum the label shares): functions
// take plain values. The formats are written down in docs/format/volume.md.
package taper
