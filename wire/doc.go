// Package wire owns everything that crosses the network between tapir's
// processes: the certificate authority that issues every host its
// certificate (ca.go), the mutual-TLS 1.3 configurations built from those
// files (tls.go), the framing of messages and data streams on a
// connection (frame.go), read as their bytes arrive and bounded per
// connection (SetReadLimit) so that no peer's announced length costs
// memory it has not sent, the BatchConn under the agent protocol's TLS
// layer (records written and read 256 KiB at a time, not one system call
// per 16 KiB record), the accept loop of the TCP servers (Serve) and
// the Limiter that holds byte streams to a rate (the server's netusage, a
// dumptype's bandwidth), and the Checkpoint record with which an agent
// tells the server where it can resume an encrypted stream. A frame record of a payload is an image.Frame,
// tapir's one frame type. The protocols themselves (which messages the
// client agent and the index server exchange) are written down in
// docs/format/agent-protocol.md and index-protocol.md (with their Limits);
// this package only knows how to move them, and that a name in an index
// request which is not UTF-8 travels byte for byte beside its JSON string
// (indexbytes.go).
//
// There is no plaintext mode. A peer is identified by the host name and the
// role (server, client, admin) carried in its certificate, never by its
// address.
package wire
