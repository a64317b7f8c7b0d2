// Command tapir is the one binary of the tapir backup system: server,
// client agent, and every administrative tool, as subcommands. Each
// subcommand lives in its own file, parses its flags and calls the package
// that owns the work.
//
// It also owns what describes the binary itself: `tapir version` (and
// --version: module version, commit, toolchain, from the build info or the
// linker stamps scripts/deb sets), the hidden `tapir man --dir DIR` that
// writes one man page per visible command for the package, and cobra's
// `tapir completion bash|zsh`.
//
// Exit status: 0 success, 1 failure (the message says what failed and what
// to do), 2 bad usage or bad configuration.
package main
