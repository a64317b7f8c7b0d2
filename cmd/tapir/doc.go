// Command tapir is the one binary of the tapir backup system: server,
// client agent, and every administrative tool, as subcommands. Each
// subcommand lives in its own file, parses its flags and calls the package
// that owns the work.
//
// Exit status: 0 success, 1 failure (the message says what failed and what
// to do), 2 bad usage or bad configuration.
package main
