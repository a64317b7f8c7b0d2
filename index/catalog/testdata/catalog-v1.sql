-- A tapir catalog at schema version 1, as the first release wrote it: the
-- schema is a frozen copy of migration step 1. TestMigrationFromV1 loads this
-- into a new file and opens it with the current code.
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

-- Data written by a version-1 tapir.
INSERT INTO runs(id, datestamp, org, started, finished, status, report) VALUES
  (1, '20240105013000', 'Daily', 1704418200000000000, 1704421800000000000, 'ok', 'all fine'),
  (2, '20240106013000', 'Daily', 1704504600000000000, NULL, 'running', '');
INSERT INTO volumes(id, label, slot, blocksize, written, created, reuse, bytes) VALUES
  (1, 'DAILY-001', 3, 262144, '20240105013000', 1704000000000000000, 1, 5000),
  (2, 'DAILY-002', 4, 262144, '', 1704000000000000000, 0, 0);
INSERT INTO dumps(id, run_id, host, path, level, datestamp, status, orig_size, payload_size,
    sha256, comp, frame_size, files, holding_path, error, started, finished) VALUES
  (1, 1, 'web1', '/etc', 0, '20240105013000', 'good', 3000000, 5000,
   'abababababababababababababababababababababababababababababababab', 'zst', 1048576, 3, '', '',
   1704418300000000000, 1704418400000000000),
  (2, 2, 'web1', '/etc', 1, '20240106013000', 'holding', 2048, 1000,
   'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', 'gz', 1048576, 0,
   '/holding/20240106013000/web1._etc.1', '', 1704504700000000000, 1704504800000000000);
INSERT INTO parts(id, dump_id, volume_id, part, fileno, record, logical_pos, "offset", length) VALUES
  (1, 1, 1, 1, 1, 0, 12, 0, 5000);
INSERT INTO frames(dump_id, idx, tar_offset, tar_size, "offset", size) VALUES
  (1, 0, 0, 1048576, 0, 2000),
  (1, 1, 1048576, 1048576, 2000, 2000),
  (1, 2, 2097152, 902848, 4000, 900),
  (2, 0, 0, 2048, 0, 1000);
INSERT INTO dirs(id, path) VALUES (1, ''), (2, 'ssl');
INSERT INTO files(dump_id, dir_id, name, type, size, mode, mtime, uid, gid, link, frame, "offset") VALUES
  (1, 1, 'ssl', '5', 0, 493, 1704000000000000000, 0, 0, '', 0, 0),
  (1, 1, 'passwd', '0', 1500, 420, 1704000001000000000, 0, 0, '', 0, 512),
  (1, 2, 'cert.pem', '0', 2000000, 420, 1704000002000000000, 0, 0, '', 1, 4096);
PRAGMA user_version = 1;
