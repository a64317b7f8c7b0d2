// Package rooms holds no code: its test reads the imports of every package
// of the module (test files excepted) and holds them to the rules of the
// rooms that the packages' doc.go files and docs/design promise — the
// catalog imports no volume code, recover knows neither the configuration
// nor the catalog nor the volumes, the taper knows no clients, the client
// knows no tapes, the planner does no I/O, and test scaffolding is
// imported by tests and benchmarks only.
package rooms
