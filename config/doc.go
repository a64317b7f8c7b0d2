// Package config owns tapir's TOML configuration: the schema (the Config
// type and its tables), the built-in defaults, the resolution of relative
// paths against the configuration file's directory, and the validation of
// every value.
//
// Every problem is reported as an *Error whose text is
// "<file>:<line>: <what is wrong>" (or "<file>: <what is wrong>" when no line
// is known), so that the command line can print it as is. Unknown keys,
// values of the wrong type, TOML syntax errors and values that fail
// validation all point at the line of the offending key.
//
// Config.Effective prints the configuration with every default filled in, as
// TOML that Load accepts again. ChainWarnings reports the valid settings
// that cannot keep one restorable chain per DLE in the rotation of volumes
// (too few slots, too short a tapecycle), with the value that would work.
//
// The package does no I/O besides reading the configuration file in Load; it
// does not check that directories, devices or hosts exist (that is the job of
// `tapir check`).
package config
