// Package dsn owns the one reading of a catalog location as a PostgreSQL
// DSN: whether a value selects PostgreSQL, and the DSN with its password
// masked for messages. The configuration and the catalog both ask it; it
// knows neither.
package dsn
