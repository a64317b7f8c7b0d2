// Package server owns a backup run and, later, the daemon around it. A run
// (`tapir dump`) opens the catalog, picks the volume it will write, asks
// every client agent for estimates, dumps every DLE onto the holding disk,
// tapes the finished images, records every part in the catalog, deletes a
// holding image only after that commit, and writes the run report.
//
// Time comes from a Clock so that runs can be driven by tests.
package server
