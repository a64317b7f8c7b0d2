package catalog

import (
	"database/sql"
	"fmt"
)

// applicationID is stored in the SQLite header (PRAGMA application_id) so that
// a tapir catalog is recognisable and a foreign SQLite file is refused.
// It spells "TAPR".
const applicationID = 0x54415052

// migrations are the schema steps, in order. Step i brings the catalog from
// user_version i to i+1 and runs in one transaction together with the version
// bump. Never edit a step that has been released: add a new one.
var migrations = []string{
	// 1: the initial schema.
	`
PRAGMA application_id = 1413566546;

CREATE TABLE runs (
	id        INTEGER PRIMARY KEY,
	datestamp TEXT    NOT NULL UNIQUE
	          CHECK (length(datestamp) = 14 AND datestamp NOT GLOB '*[^0-9]*'),
	org       TEXT    NOT NULL DEFAULT '',
	started   INTEGER NOT NULL,
	finished  INTEGER,
	status    TEXT    NOT NULL DEFAULT 'running'
	          CHECK (status IN ('running', 'ok', 'strange', 'failed', 'degraded')),
	report    TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE volumes (
	id        INTEGER PRIMARY KEY,
	label     TEXT    NOT NULL UNIQUE CHECK (label <> ''),
	slot      INTEGER NOT NULL DEFAULT 0,
	blocksize INTEGER NOT NULL DEFAULT 0,
	written   TEXT    NOT NULL DEFAULT '',
	created   INTEGER,
	reuse     INTEGER NOT NULL DEFAULT 1 CHECK (reuse IN (0, 1)),
	bytes     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE dumps (
	id           INTEGER PRIMARY KEY,
	run_id       INTEGER NOT NULL REFERENCES runs(id),
	host         TEXT    NOT NULL,
	path         TEXT    NOT NULL,
	level        INTEGER NOT NULL CHECK (level BETWEEN 0 AND 99),
	datestamp    TEXT    NOT NULL,
	status       TEXT    NOT NULL DEFAULT 'dumping'
	             CHECK (status IN ('dumping', 'holding', 'good', 'failed', 'partial')),
	orig_size    INTEGER NOT NULL DEFAULT 0,
	payload_size INTEGER NOT NULL DEFAULT 0,
	sha256       TEXT    NOT NULL DEFAULT '',
	comp         TEXT    NOT NULL DEFAULT 'zst',
	frame_size   INTEGER NOT NULL DEFAULT 0,
	files        INTEGER NOT NULL DEFAULT 0,
	holding_path TEXT    NOT NULL DEFAULT '',
	error        TEXT    NOT NULL DEFAULT '',
	started      INTEGER,
	finished     INTEGER
);
CREATE INDEX dumps_dle ON dumps(host, path, datestamp);
CREATE INDEX dumps_run ON dumps(run_id);

CREATE TABLE parts (
	id          INTEGER PRIMARY KEY,
	dump_id     INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	volume_id   INTEGER NOT NULL REFERENCES volumes(id),
	part        INTEGER NOT NULL,
	fileno      INTEGER NOT NULL,
	record      INTEGER NOT NULL,
	logical_pos INTEGER NOT NULL DEFAULT -1,
	"offset"    INTEGER NOT NULL,
	length      INTEGER NOT NULL,
	UNIQUE (dump_id, part)
);
CREATE INDEX parts_volume ON parts(volume_id);

CREATE TABLE frames (
	dump_id    INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	idx        INTEGER NOT NULL,
	tar_offset INTEGER NOT NULL,
	tar_size   INTEGER NOT NULL,
	"offset"   INTEGER NOT NULL,
	size       INTEGER NOT NULL,
	PRIMARY KEY (dump_id, idx)
) WITHOUT ROWID;

CREATE TABLE dirs (
	id   INTEGER PRIMARY KEY,
	path TEXT NOT NULL UNIQUE
);

CREATE TABLE files (
	dump_id  INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	dir_id   INTEGER NOT NULL REFERENCES dirs(id),
	name     TEXT    NOT NULL,
	type     TEXT    NOT NULL,
	size     INTEGER NOT NULL,
	mode     INTEGER NOT NULL,
	mtime    INTEGER,
	uid      INTEGER NOT NULL,
	gid      INTEGER NOT NULL,
	link     TEXT    NOT NULL DEFAULT '',
	frame    INTEGER NOT NULL,
	"offset" INTEGER NOT NULL
);
CREATE INDEX files_entry ON files(dump_id, dir_id, name);
`,
	// 2: when a dump became good on tape, and a status index for the
	// holding/flush listings.
	`
ALTER TABLE dumps ADD COLUMN taped INTEGER;
CREATE INDEX dumps_status ON dumps(status);
`,
	// 3: what the recover side needs to browse and restore without
	// reading images, and the force flags of the planner.
	//   files.span: tar bytes from the entry's first header to the next
	//     entry's (0: unknown, read to the end of the stream), so that a
	//     restore fetches exactly the frames of an entry, headers included.
	//   listings: each directory's GNU.dumpdir listing in an incremental
	//     image, so that a view at a date applies deletions and renames;
	//     dumps.listed says the listings of a dump are recorded.
	//   force: DLEs that get a full at the next run.
	`
ALTER TABLE files ADD COLUMN span INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dumps ADD COLUMN listed INTEGER NOT NULL DEFAULT 0;
CREATE TABLE listings (
	dump_id INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	dir_id  INTEGER NOT NULL REFERENCES dirs(id),
	dumpdir BLOB    NOT NULL,
	PRIMARY KEY (dump_id, dir_id)
) WITHOUT ROWID;
CREATE TABLE force (
	host  TEXT    NOT NULL,
	path  TEXT    NOT NULL,
	since INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (host, path)
) WITHOUT ROWID;
`,
	// 4: overwrites in two phases, and tape files that failed.
	//   volumes.overwriting: the datestamp (or "X" for tapir label) of a
	//     label being written over this volume, '' when none; the old
	//     images stay known until the new label is on the volume and read
	//     back. volumes.overwriting_as: the label being written.
	//   failed_files: tape files a failed write left on a volume (a
	//     truncated image), so that verify and rebuild skip them by name
	//     instead of calling them orphans.
	`
ALTER TABLE volumes ADD COLUMN overwriting TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN overwriting_as TEXT NOT NULL DEFAULT '';
CREATE TABLE failed_files (
	volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
	fileno    INTEGER NOT NULL,
	datestamp TEXT    NOT NULL,
	host      TEXT    NOT NULL DEFAULT '',
	path      TEXT    NOT NULL DEFAULT '',
	level     INTEGER NOT NULL DEFAULT 0,
	reason    TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (volume_id, fileno)
) WITHOUT ROWID;
`,
	// 5: encrypted images (docs/format/image.md, "Encryption").
	//   dumps.encryption: none or age; dumps.recipients: the fingerprints
	//     of the age recipients, space-separated; dumps.crypt_header: the
	//     age header and nonce, the payload's first bytes.
	`
ALTER TABLE dumps ADD COLUMN encryption TEXT NOT NULL DEFAULT 'none' CHECK (encryption IN ('none', 'age'));
ALTER TABLE dumps ADD COLUMN recipients TEXT NOT NULL DEFAULT '';
ALTER TABLE dumps ADD COLUMN crypt_header BLOB;
`,
	// 6: several tapir servers sharing one catalog (docs/format/catalog.md,
	// "Several servers").
	//   runs.server, dumps.server: the server that made them (its
	//     [server] name; the org before servers had names).
	//   volumes.server: the server whose changer holds the volume, the
	//     only one that may write it; '' until one writes or labels it.
	//   servers: each server's host and the address of its index server,
	//     where the others fetch the frames of its volumes.
	`
ALTER TABLE runs ADD COLUMN server TEXT NOT NULL DEFAULT '';
ALTER TABLE dumps ADD COLUMN server TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN server TEXT NOT NULL DEFAULT '';
UPDATE runs SET server = org;
UPDATE dumps SET server = coalesce((SELECT r.server FROM runs r WHERE r.id = dumps.run_id), '');
UPDATE volumes SET server = coalesce((SELECT d.server FROM parts p JOIN dumps d ON d.id = p.dump_id
	WHERE p.volume_id = volumes.id ORDER BY p.id LIMIT 1), '');
CREATE INDEX runs_server ON runs(server, status);
CREATE INDEX dumps_server ON dumps(server, status);
CREATE TABLE servers (
	name       TEXT    NOT NULL PRIMARY KEY CHECK (name <> ''),
	host       TEXT    NOT NULL DEFAULT '',
	index_addr TEXT    NOT NULL DEFAULT '',
	seen       INTEGER
) WITHOUT ROWID;
INSERT INTO servers(name) SELECT DISTINCT server FROM runs WHERE server <> '';
`,
	// 7: a catalog of tens of millions of file versions (docs/format/catalog.md,
	// "Size").
	//   files: keyed by (dump_id, dir_id, name, frame, "offset") and, on
	//     SQLite, WITHOUT ROWID: the rows are the index, nothing is stored
	//     twice (on PostgreSQL the key's index carries type as well, for the
	//     directory listings read from the index alone).
	//   names: every (name, directory) pair the file index has held,
	//     keyed by name: FindVersions looks a name (or a pattern with a
	//     literal start) up here, then each dump by the files key. Pairs
	//     stay when their dumps leave (a pair no dump holds finds nothing).
	//   dumpdirs: each distinct GNU.dumpdir value once, zstd-compressed,
	//     under a key drawn from its hash; listings refer to it instead of
	//     holding the value, so a directory that did not change is not
	//     stored again by the next incremental. The values move by code
	//     (convertListings7) after this SQL.
	`
CREATE TABLE files_v7 (
	dump_id  INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	dir_id   INTEGER NOT NULL REFERENCES dirs(id),
	name     TEXT    NOT NULL,
	frame    INTEGER NOT NULL,
	"offset" INTEGER NOT NULL,
	type     TEXT    NOT NULL,
	size     INTEGER NOT NULL,
	mode     INTEGER NOT NULL,
	mtime    INTEGER,
	uid      INTEGER NOT NULL,
	gid      INTEGER NOT NULL,
	link     TEXT    NOT NULL DEFAULT '',
	span     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (dump_id, dir_id, name, frame, "offset")
) WITHOUT ROWID;
INSERT INTO files_v7(dump_id, dir_id, name, frame, "offset", type, size, mode, mtime, uid, gid, link, span)
	SELECT dump_id, dir_id, name, frame, "offset", type, size, mode, mtime, uid, gid, link, span FROM files
	WHERE true ORDER BY dump_id, dir_id, name, frame, "offset"
	ON CONFLICT DO NOTHING;
DROP TABLE files;
ALTER TABLE files_v7 RENAME TO files;
CREATE TABLE names (
	name   TEXT    NOT NULL,
	dir_id INTEGER NOT NULL,
	PRIMARY KEY (name, dir_id)
) WITHOUT ROWID;
INSERT INTO names(name, dir_id) SELECT DISTINCT name, dir_id FROM files WHERE true ON CONFLICT DO NOTHING;
CREATE TABLE dumpdirs (
	id     INTEGER NOT NULL PRIMARY KEY,
	packed BLOB    NOT NULL
);
CREATE TABLE listings_v7 (
	dump_id    INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	dir_id     INTEGER NOT NULL REFERENCES dirs(id),
	dumpdir_id INTEGER NOT NULL,
	PRIMARY KEY (dump_id, dir_id)
) WITHOUT ROWID;
CREATE INDEX listings_dumpdir ON listings_v7(dumpdir_id);
`,
	// 8: the file index by directory (docs/format/catalog.md, "Packed
	// entries"): files holds, for each directory of each image, its
	// entries packed in chunks of up to 1,024 (packed.go), with the
	// first and last name of each chunk beside it. One row per chunk
	// instead of one per entry: 3–4 times smaller, and a directory of
	// 100,000 entries is about 100 rows to read. The rows move by code
	// (convertFiles8) after this SQL. The key is the order of writing
	// (a writer numbers its chunks), so that new rows go at the end of
	// the B-tree and its pages stay full; files_dir finds a directory's
	// chunks (created after the rows move).
	`
CREATE TABLE files_v8 (
	dump_id INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	dir_id  INTEGER NOT NULL REFERENCES dirs(id),
	seq     INTEGER NOT NULL,
	lo      TEXT    NOT NULL,
	hi      TEXT    NOT NULL,
	n       INTEGER NOT NULL CHECK (n > 0),
	packed  BLOB    NOT NULL,
	PRIMARY KEY (dump_id, seq)
) WITHOUT ROWID;
`,
	// 9: offsite copies (tapir vault; docs/format/catalog.md, "Copies").
	//   copies: the parts of further copies of a good image, on the
	//     volumes of another label set: the same columns as parts, with
	//     the copy's number (1, 2, ...; the parts table is the image's
	//     first location) and when it was written. A copy is whole or
	//     absent: its rows go in one transaction, and go together when one
	//     of its volumes is overwritten or removed. When a volume holding
	//     an image's parts is overwritten while a whole copy of the image
	//     is elsewhere, the copy's rows move to parts (vault.go).
	//   (IF NOT EXISTS: the tests that take a catalog back to an older
	//   schema leave the table.)
	`
CREATE TABLE IF NOT EXISTS copies (
	dump_id     INTEGER NOT NULL REFERENCES dumps(id) ON DELETE CASCADE,
	copy        INTEGER NOT NULL CHECK (copy > 0),
	part        INTEGER NOT NULL,
	volume_id   INTEGER NOT NULL REFERENCES volumes(id),
	fileno      INTEGER NOT NULL,
	record      INTEGER NOT NULL,
	logical_pos INTEGER NOT NULL DEFAULT -1,
	"offset"    INTEGER NOT NULL,
	length      INTEGER NOT NULL,
	copied      INTEGER NOT NULL,
	PRIMARY KEY (dump_id, copy, part)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS copies_volume ON copies(volume_id);
`,
	// 10: command DLEs (docs/format/catalog.md, "Dumps").
	//   dumps.payload: what the payload's plaintext is once its frames are
	//     decompressed: "tar" (a pax archive with an index) or "command"
	//     (the standard output of a command DLE's command, no index).
	`
ALTER TABLE dumps ADD COLUMN payload TEXT NOT NULL DEFAULT 'tar';
`,
}

// migrationCode is Go that runs after the SQL of a step (by index in
// migrations), in the same transaction: what SQL alone cannot do.
var migrationCode = map[int]func(tx *sql.Tx, d dialect) error{
	6: convertListings7,
	7: convertFiles8,
}

// convertListings7 moves the listings of schema 6 (the value in each
// row) to schema 7 (the value once in dumpdirs, the rows referring to it).
func convertListings7(tx *sql.Tx, d dialect) error {
	rows, err := tx.Query(`SELECT dump_id, dir_id, dumpdir FROM listings ORDER BY dump_id, dir_id`)
	if err != nil {
		return err
	}
	type old struct {
		dump, dir int64
		value     []byte
	}
	var all []old
	for rows.Next() {
		var o old
		if err := rows.Scan(&o.dump, &o.dir, &o.value); err != nil {
			rows.Close()
			return err
		}
		all = append(all, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	ins, err := tx.Prepare(`INSERT INTO listings_v7(dump_id, dir_id, dumpdir_id) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	st := newDumpdirStore(tx)
	defer st.close()
	for _, o := range all {
		id, err := st.put(string(o.value))
		if err != nil {
			return err
		}
		if _, err := ins.Exec(o.dump, o.dir, id); err != nil {
			return err
		}
	}
	for _, q := range []string{`DROP TABLE listings`, `ALTER TABLE listings_v7 RENAME TO listings`} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	return nil
}

// SchemaVersion is the catalog schema version this code writes (PRAGMA
// user_version after Open). It is always len(migrations).
const SchemaVersion = 10

// convertFiles8 packs the index rows of schema 7 (one per entry) into the
// chunks of schema 8, dump by dump, 100,000 rows at a time.
func convertFiles8(tx *sql.Tx, d dialect) error {
	dumps, err := queryInts(tx, `SELECT id, frame_size FROM dumps WHERE id IN (SELECT DISTINCT dump_id FROM files) ORDER BY id`)
	if err != nil {
		return err
	}
	const page = 100000
	for i := 0; i+1 < len(dumps); i += 2 {
		id, frameSize := dumps[i], dumps[i+1]
		if frameSize <= 0 {
			return fmt.Errorf("dump %d has index rows but no frame size", id)
		}
		var seq int64
		dir, name, frame, off := int64(-1), "", int64(-1), int64(-1)
		for {
			rows, err := tx.Query(`SELECT dir_id, name, frame, "offset", type, size, mode, mtime, uid, gid, link, span
				FROM files WHERE dump_id = ? AND (dir_id, name, frame, "offset") > (?, ?, ?, ?)
				ORDER BY dir_id, name, frame, "offset" LIMIT `+fmt.Sprint(page), id, dir, name, frame, off)
			if err != nil {
				return err
			}
			var buf []pendingFile
			var dirIDs []int64
			for rows.Next() {
				var p pendingFile
				var typ string
				var mode int64
				var mtime sql.NullInt64
				if err := rows.Scan(&dir, &name, &frame, &off, &typ, &p.size, &mode, &mtime, &p.uid, &p.gid, &p.link, &p.span); err != nil {
					rows.Close()
					return err
				}
				p.name, p.mode, p.tarOff = name, uint32(mode), frame*frameSize+off
				if typ != "" {
					p.typ = typ[0]
				}
				p.mtime, p.hasMtime = mtime.Int64, mtime.Valid
				buf = append(buf, p)
				dirIDs = append(dirIDs, dir)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(buf) == 0 {
				break
			}
			sorted := make([]sortedRow, len(buf))
			for k := range buf {
				sorted[k] = sortedRow{dirIDs[k], &buf[k]}
			}
			n, err := insertChunks(tx, "files_v8", id, seq, sorted)
			if err != nil {
				return err
			}
			seq += n
			if len(buf) < page {
				break
			}
		}
	}
	for _, q := range []string{`DROP TABLE files`, `ALTER TABLE files_v8 RENAME TO files`,
		`CREATE INDEX files_dir ON files(dump_id, dir_id, seq)`} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	return nil
}

// queryInts returns the integer columns of every row of q, row after row.
func queryInts(tx *sql.Tx, q string, args ...any) ([]int64, error) {
	rows, err := tx.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []int64
	vals := make([]int64, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	return out, rows.Err()
}
