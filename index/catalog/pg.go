package catalog

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgLockKey is the advisory lock that serialises the migrations of one
// PostgreSQL catalog: "TAPR", like the SQLite application id.
const pgLockKey = applicationID

// openPG opens the catalog in the PostgreSQL database named by dsn and
// migrates its schema. Writes go through one connection per Catalog, as on
// SQLite; other processes' writers are kept apart by SERIALIZABLE
// transactions (see write).
func openPG(dsn string) (*Catalog, error) {
	c := &Catalog{path: MaskDSN(dsn), d: pgDialect, writers: map[int64]bool{}}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password and all.
		return nil, c.fail("open", errors.New("the PostgreSQL DSN does not parse; see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS"))
	}
	connector := pgConnector{stdlib.GetConnector(*cfg)}
	c.w = sql.OpenDB(connector)
	c.w.SetMaxOpenConns(1)
	c.w.SetMaxIdleConns(1)
	c.w.SetConnMaxLifetime(0)
	c.w.SetConnMaxIdleTime(0)
	if err := c.w.Ping(); err != nil {
		c.w.Close()
		return nil, c.fail("open", fmt.Errorf("%w (check that the PostgreSQL server runs and that the DSN names its host, database and role)", err))
	}
	if err := c.migrate(); err != nil {
		c.w.Close()
		return nil, err
	}
	c.r = sql.OpenDB(connector)
	c.r.SetMaxOpenConns(8)
	c.r.SetMaxIdleConns(4)
	if err := c.r.Ping(); err != nil {
		c.r.Close()
		c.w.Close()
		return nil, c.fail("open for reading", err)
	}
	return c, nil
}

// pgMeta reads the application id and schema version of a PostgreSQL
// catalog from tapir_meta, the counterpart of SQLite's PRAGMA
// application_id and user_version. A database without tapir_meta is new
// (version 0) when it has no tables, and foreign otherwise. The caller
// holds the migration lock.
func pgMeta(tx *sql.Tx) (appID, version int64, err error) {
	var meta sql.NullString
	if err := tx.QueryRow(`SELECT to_regclass('tapir_meta')::text`).Scan(&meta); err != nil {
		return 0, 0, err
	}
	if !meta.Valid {
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&n); err != nil {
			return 0, 0, err
		}
		if n > 0 {
			return 0, 0, errors.New("not a tapir catalog (a PostgreSQL database with tables but no tapir_meta); point the catalog DSN at a tapir catalog or at a new database")
		}
		return 0, 0, nil
	}
	rows, err := tx.Query(`SELECT key, value FROM tapir_meta`)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			return 0, 0, err
		}
		switch k {
		case "application_id":
			appID = v
		case "schema_version":
			version = v
		}
	}
	return appID, version, rows.Err()
}

// pgSetMeta stores one tapir_meta value, creating the table first.
func pgSetMeta(tx *sql.Tx, key string, value int64) error {
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS tapir_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)`); err != nil {
		return err
	}
	_, err := tx.Exec(`INSERT INTO tapir_meta(key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}
