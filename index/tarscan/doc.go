// Package tarscan reads a tapir payload's tar stream the way the client
// agent indexed it while dumping: one record per entry (the DLE root
// excepted) with the tar offset of the entry's first header, and each
// directory's GNU.dumpdir listing. The catalog rebuild recreates the file
// index from it, and the index server the listings of an incremental that
// were never recorded.
package tarscan
