// Package recover owns getting files back: finding, through the catalog,
// the newest image that holds a file, reading only the frames that hold it
// from the volume (or the holding disk), and writing it locally with its
// mode, owner and times — refusing any name that would land outside the
// target directory. The interactive shell and the index server come later;
// this package already does the extraction they will call.
package recover
