// Package testsite builds a small tapir installation in a directory for
// tests and benchmarks of the catalog, the index server and the recover
// shell: a CA with server, client and admin certificates, a disk changer of
// vtapes, a holding disk and a catalog, filled by dumping real directory
// trees with the client's own dump code (client.Dump, incremental state
// included) and writing the images onto vtapes the way the taper does
// (label, 32 KiB header record, payload records of the blocksize, filemark),
// recording runs, dumps, frames, parts and the file index as a run does.
//
// It does not go through the server package, so that what it builds
// depends only on the formats (docs/format/*.md).
package testsite
