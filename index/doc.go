// Package index is the room of the catalog and of what serves it; it holds
// no code of its own. Its packages are siblings, so that the catalog sits
// beside the code that reads volumes, never above it:
//
//   - catalog: the SQLite catalog, the only shared memory between a run and
//     a restore. It imports no volume code.
//   - indexd: the index server (TCP 10082, mutual TLS) that recover shells
//     browse the catalog through and get restore data from; it reads
//     volumes through a VolumeSource.
//   - rebuild: recreates a catalog from the volumes alone.
//   - tarscan: reads a payload's tar stream the way the client agent
//     indexed it while dumping (ingest, the index server and rebuild use it).
//
// Text for people about what the catalog knows lives with the report
// (report/admin); whole test installations live in internal/testsite.
package index
