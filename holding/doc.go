// Package holding owns the holding disk: the spool directory where images
// wait between the dumpers and the taper. An image is written as
// <holding>/<datestamp>/<stem>.tmp (stem = image.Header.Name()), with a
// placeholder header that is rewritten with the final sizes and SHA-256
// once the payload is complete; then the file is fsynced, renamed to its
// final name and the directory fsynced. A file without the .tmp suffix is
// therefore always a complete image; a .tmp file is the leftover of a dump
// that did not finish. The format is written down in docs/format/holding.md.
package holding
