// Package restore restores on the backup server itself (`tapir recover -c
// CONFIG`): File, one file from the newest image that holds it (any name of
// a set of hard links: the data its image stores under the set's first
// name, written under the name asked), and Tree, a
// whole DLE as of a date by applying its chain of images, straight from the
// catalog and the volumes (through the indexd.VolumeSource its caller
// passes, whatever the changer's type) or the holding disk, without the
// index server. Tree refuses a target that is not empty
// unless asked to overwrite. Every write goes through recover's Extractor,
// so the same os.Root rules hold as in the shell. An encrypted image is read
// through crypt.ReaderAt with the key Request.Identities unwraps (File: only
// the chunks of the file's frames; Tree: every key of the chain is
// unwrapped before anything is written).
//
// An image is read from its own volumes when they are all there, else
// from a whole copy (tapir vault) whose volumes are (copies.go); with
// neither, the error names every location.
//
// It must not know the run, the planner, how volumes are chosen or which
// changer holds them (it builds no changer): it only reads.
package restore
