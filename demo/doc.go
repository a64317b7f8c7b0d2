// Package demo owns `tapir demo`: a complete backup night on one machine,
// with no root, no tape drive and no network beyond loopback. It creates a
// CA and certificates, a configuration, a disk changer of virtual tapes, a
// holding disk, a sample tree, and a second, small DLE whose images the
// agent encrypts with age to a demo key (keys/demo.key), all under one
// directory; starts a client agent in-process; runs a dump through the
// same code as `tapir dump`; restores one file through the same code as
// `tapir recover` (and one of the encrypted DLE, with the key) and
// compares it with the original. Running it again runs another night on
// the same site, so the volumes and the catalog grow as they would in
// production.
package demo
