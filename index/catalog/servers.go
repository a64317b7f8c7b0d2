package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"time"
)

// Several tapir servers may share one catalog (PostgreSQL): each has its
// own configuration, holding disk and changer, and a name ([server] name).
// A Catalog opened for a server (SetServer) keeps the server's work apart
// from the others':
//
//   - BeginRun and CreateDump record the server; Runs, DumpsWithStatus and
//     FailInterrupted see only its runs and dumps, so that one server's
//     start never fails another's running night, nor flushes its holding
//     disk;
//   - Volumes lists the volumes it owns (and those no server owns yet); a
//     volume belongs to the server that first labels or writes it, and
//     every write (AddVolume, LabelVolume, BeginOverwrite,
//     StartVolumeWrite, SetVolumeReuse, RemoveVolume) of another server's
//     volume is refused with ErrOtherServer: label namespaces never
//     overlap, whatever the labelstr of each configuration says;
//   - browsing (Hosts, Dumps, View, Chain, the index) sees every server's
//     images, and each Dump says which server holds it.
//
// A Catalog without SetServer (tests, tools such as a rebuild) sees and
// writes everything and records the server "": such runs, dumps and
// volumes count as every server's until one writes the volume.

// ErrOtherServer is matched (errors.Is) by the error of a write to a volume
// that another server owns.
var ErrOtherServer = errors.New("volume belongs to another tapir server")

type otherServer struct{ msg string }

func (e *otherServer) Error() string        { return e.msg }
func (e *otherServer) Is(target error) bool { return target == ErrOtherServer }

var serverNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckServerName says whether name may name a server: 1 to 64 letters,
// digits, '.', '_' or '-', starting with a letter or digit.
func CheckServerName(name string) error {
	if !serverNameRE.MatchString(name) {
		return fmt.Errorf("server name %q must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// SetServer opens the catalog for the tapir server name: what it records
// is that server's, and what it lists of runs, holding dumps and volumes is
// that server's (see above). Call it once, right after Open, before the
// catalog is used.
func (c *Catalog) SetServer(name string) error {
	if err := CheckServerName(name); err != nil {
		return c.fail("open for a server", err)
	}
	c.server = name
	return nil
}

// ServerName is the server given to SetServer, "" when none.
func (c *Catalog) ServerName() string { return c.server }

// ownedTx refuses a write to a volume that another server owns (owner is
// the volume's server column).
func (c *Catalog) owned(label, owner string) error {
	if c.server == "" || owner == "" || owner == c.server {
		return nil
	}
	return &otherServer{fmt.Sprintf("volume %s belongs to tapir server %q (its changer holds it), not to this server %q: only %q may write, label or retire it; give each server volume labels of its own (labelstr and autolabel)", label, owner, c.server, owner)}
}

// Server is one tapir server of the catalog.
type Server struct {
	Name string
	// Host is the machine the server last ran on; IndexAddr the address
	// (host:port) where the other servers reach its index server, "" when
	// it has none.
	Host, IndexAddr string
	Seen            time.Time // when it last started a run or its daemon
	Runs, Volumes   int       // its runs and the volumes it owns
}

// RegisterServer records that the catalog's server (SetServer) runs on host
// and serves its index at indexAddr ("" for none), seen now. A server of
// the same name registered from another host is refused (two machines
// under one name would write each other's volumes) unless takeOver says
// this machine replaces that one.
func (c *Catalog) RegisterServer(ctx context.Context, host, indexAddr string, now time.Time, takeOver bool) error {
	op := fmt.Sprintf("register server %q", c.server)
	if c.server == "" {
		return c.fail(op, errors.New("the catalog was opened for no server"))
	}
	if err := checkName("host", host, false); err != nil {
		return c.fail(op, err)
	}
	return c.write(ctx, op, func(tx *sql.Tx) error {
		var was string
		err := tx.QueryRow(`SELECT host FROM servers WHERE name = ?`, c.server).Scan(&was)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.Exec(`INSERT INTO servers(name, host, index_addr, seen) VALUES (?, ?, ?, ?)`, c.server, host, indexAddr, toNS(now))
			return err
		case err != nil:
			return err
		case was != "" && was != host && !takeOver:
			return fmt.Errorf("the tapir server %q of this catalog runs on host %s, and this is host %s: give this server a [server] name of its own (two machines under one name would write each other's volumes); if this machine replaces %s, run tapir admin servers --take-over -c FILE here", c.server, was, host, was)
		}
		_, err = tx.Exec(`UPDATE servers SET host = ?, index_addr = ?, seen = ? WHERE name = ?`, host, indexAddr, toNS(now), c.server)
		return err
	})
}

// Servers returns every server of the catalog, by name, with what it owns.
// A server that made runs before servers registered is listed too.
func (c *Catalog) Servers(ctx context.Context) ([]Server, error) {
	var out []Server
	err := c.read(ctx, "list servers", func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT n.name, coalesce(s.host, ''), coalesce(s.index_addr, ''), s.seen,
			(SELECT count(*) FROM runs r WHERE r.server = n.name),
			(SELECT count(*) FROM volumes v WHERE v.server = n.name)
			FROM (SELECT name FROM servers UNION SELECT DISTINCT server FROM runs WHERE server <> ''
			      UNION SELECT DISTINCT server FROM volumes WHERE server <> '') n
			LEFT JOIN servers s ON s.name = n.name ORDER BY n.name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s Server
			var seen sql.NullInt64
			if err := rows.Scan(&s.Name, &s.Host, &s.IndexAddr, &seen, &s.Runs, &s.Volumes); err != nil {
				return err
			}
			s.Seen = fromNS(seen)
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}

// LockServer takes the catalog-wide lock of the catalog's server for a run,
// so that two processes under one server name never run at once, even on
// two machines: on PostgreSQL a session advisory lock, which the database
// drops when the holder's connection ends (a killed process holds nothing).
// On SQLite the run lock next to the catalog already does it, and
// LockServer only returns. unlock gives the lock back.
func (c *Catalog) LockServer(ctx context.Context) (unlock func(), err error) {
	op := fmt.Sprintf("lock server %q", c.server)
	if c.server == "" {
		return nil, c.fail(op, errors.New("the catalog was opened for no server"))
	}
	if !c.d.pg {
		return func() {}, nil
	}
	conn, err := c.r.Conn(ctx)
	if err != nil {
		return nil, c.fail(op, err)
	}
	h := fnv.New32a()
	h.Write([]byte(c.server))
	key := int32(h.Sum32())
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(?, ?)`, int32(applicationID), key).Scan(&got); err != nil {
		conn.Close()
		return nil, c.fail(op, err)
	}
	if !got {
		conn.Close()
		var host string
		_ = c.r.QueryRowContext(ctx, `SELECT host FROM servers WHERE name = ?`, c.server).Scan(&host)
		where := ""
		if host != "" {
			where = " (registered on host " + host + ")"
		}
		return nil, c.fail(op, fmt.Errorf("another process of tapir server %q%s is running a night or a tape command on this catalog: wait for it to end, or give this server a [server] name of its own", c.server, where))
	}
	c.mu.Lock()
	if c.held == nil {
		c.held = map[*sql.Conn]bool{}
	}
	c.held[conn] = true
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.held[conn] {
			return // Close ended it
		}
		delete(c.held, conn)
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(?, ?)`, int32(applicationID), key)
		conn.Close()
	}, nil
}

// ForgetServer removes a server's registration (its host and index
// address). Its runs, dumps and volumes stay, still its own.
func (c *Catalog) ForgetServer(ctx context.Context, name string) error {
	return c.write(ctx, fmt.Sprintf("forget server %q", name), func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM servers WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFoundf("no server named %q is registered", name)
		}
		return nil
	})
}

// serverFilter is the WHERE fragment (with its args) that keeps the rows of
// the catalog's server in a table with a server column named col, and the
// rows of no server (written by a catalog opened for none: a rebuild, a
// tool); "" when the catalog is opened for no server.
func (c *Catalog) serverFilter(col string) (string, []any) {
	if c.server == "" {
		return "", nil
	}
	return ` AND ` + col + ` IN ('', ?)`, []any{c.server}
}
