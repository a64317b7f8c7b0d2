// Package catalog owns the tapir catalog: the SQLite database that is the only
// shared memory between a backup run and a restore.
//
// It records runs, volumes (tapes and vtapes), dumps (one image of one DLE at
// one level), the parts of each dump on volumes, the frame list of each
// payload, the file index of every dump (directory paths interned in a
// dirs table; each directory's entries of an image sorted and packed in
// chunks of columns, zstd-compressed, one row per chunk with its first and
// last name: packed.go), each incremental's directory listings (each
// distinct listing stored once, compressed, and shared by the
// incrementals that did not change the directory), and the force flags.
// It answers the questions a recover session asks: what a DLE held at a
// date (View: a full and the incrementals after it, deletions and renames
// applied), which good dump holds a file, and where exactly (volume, tape
// file, record, frame, offset) its bytes start and end; and every version
// of a file across all the images of a DLE (FindVersions, through the
// names table).
//
// An image may have further copies on the volumes of another label set
// (tapir vault; the copies table, vault.go): RecordCopy records one whole,
// Copies and AllCopies read them, and overwriting or removing a volume
// forgets the copies on it and keeps an image that still has a whole copy
// elsewhere, its copy becoming its parts. An image still waiting on the
// holding disk may be copied too; lost there before any flush, it is kept
// on its copy (KeepOnCopy).
//
// The catalog is a real SQLite file in WAL mode with foreign keys on,
// busy_timeout 5000 ms and synchronous=FULL on every connection, so that a
// commit that returned nil survives a power cut (a holding file may be deleted
// after CommitTaped returns nil). All writes go through one connection and are
// serialised in Go; readers use their own connections and never wait for a
// writer. Index ingest (FileWriter) commits in batches so that a long ingest
// never holds the write lock for more than one batch.
//
// Errors name the catalog file and the operation (*OpError); a lookup of
// something that is not there matches ErrNotFound, and its innermost error
// says what, in a person's words.
//
// Every method that touches the database takes a context.Context first.
// Reads (View's methods too: List, Walk, Find...) stop when it ends, with an
// error matching ctx.Err(), so a server can drop the work of a request whose
// peer went away. Writes honour it only before their transaction starts: a
// write is never cancelled half-way, and one given an ended context commits
// nothing (see Catalog).
//
// The schema is versioned with PRAGMA user_version and migrated at Open, one
// transaction per step; a catalog written by a newer tapir refuses to open.
// The file format is described in docs/format/catalog.md.
//
// Open of a postgres:// or postgresql:// DSN puts the same catalog in a
// PostgreSQL database (through pgx): the same schema and SQL, with what
// differs in a small dialect (dialect.go), the version in a tapir_meta
// table, SERIALIZABLE write transactions retried when they lose a race
// with another process, and REPEATABLE READ snapshots for reads. Every test
// of the package runs on both (docs/format/catalog.md, "PostgreSQL").
//
// Several tapir servers may share one catalog (normally on PostgreSQL).
// A Catalog is opened as one server (SetServer): its runs, the holding
// dumps it flushes, its interrupted nights and the volumes its changer may
// write are its own (runs.server, dumps.server, volumes.server); browsing
// (hosts, views, FindVersions, metrics) sees every server's. The catalog
// enforces what configurations cannot: unique datestamps across servers,
// one night per server at a time (LockServer: a PostgreSQL advisory lock
// held by a connection, released by a crash too), no write to a volume
// another server owns (ErrOtherServer), and one host per server name
// (RegisterServer, the servers table; docs/format/catalog.md, "Several
// servers, one catalog").
//
// Copy moves a catalog into a new, empty one, on either backend (SQLite to
// PostgreSQL, and back): every table, discovered from the database, in one
// write transaction (COPY on PostgreSQL), then verified by Checksums, a row
// count and a SHA-256 per table that are the same on both backends
// (docs/format/catalog.md, "Moving a catalog").
//
// It imports no volume code and no other tapir package but gnutar and
// image (the format package: a payload's frame list is a list of
// image.Frame, the same type the readers and the agent protocol use): what
// reads volumes (the index server, rebuild) imports the catalog, never the
// other way round.
package catalog
