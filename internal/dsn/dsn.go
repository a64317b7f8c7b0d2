package dsn

import (
	"net/url"
	"strings"
)

// IsPostgres reports whether a catalog location is a PostgreSQL DSN
// (postgres:// or postgresql://).
func IsPostgres(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Mask returns a PostgreSQL DSN with its password (user info or
// password= parameter) replaced by "xxxxx"; any other value is returned as
// it is.
func Mask(s string) string {
	if !IsPostgres(s) {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "postgres://(unparsable DSN)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
