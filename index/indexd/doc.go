// Package indexd is the index server (TCP 10082, mutual TLS): one port
// for browsing the catalog and for restore data, unlike Amanda's amindexd
// and amidxtaped. A recover shell asks it for hosts, DLEs, the history of
// a DLE, directories of the view at a date (the newest full before it plus
// the incrementals after it, deletions and renames applied), and finally
// for the frames that hold the files it extracts: the server seeks in the
// vtape file, the holding file or the tape (MTSEEK, or rewind + fsf + fsr)
// and sends only those compressed frames; the shell decompresses and writes
// the files itself.
//
// An encrypted image (age, image/crypt) is restored without a key on the
// server: the frames are mapped to the 64 KiB age chunks that hold them
// (sealed.go), the server reads and sends their ciphertext (a chunk two
// frames share goes once, carried), and the shell decrypts. The protocol
// fields for it are wire.ImageInfo's encryption and wire.Sealed.
//
// A certificate with the client role browses and restores only the DLEs of
// the host it names; an admin (or server) certificate browses every host.
// An image with a whole copy on another label set (tapir vault) is read
// from that copy when its own volumes are not all there (copies.go).
// Volumes are reached through the VolumeSource seam (DiskVolumes for the
// disk changer; index/indexd/volumetest is the conformance suite of every
// source); a volume that is not available is an error naming it and where
// to put it, unless the source waits for a person (a single drive) and the
// reader can ask one (Ask): then Open asks and waits until the volume is
// there or the ctx ends. A restore reads its volumes in tape order through
// one Pass (pass.go): each volume loaded once, read forward. The header of every image read for a
// restore must match its own checksum and what the catalog says is there
// (datestamp, host, path, level, part, comp, frame size); otherwise the
// restore fails with an error naming the volume, the tape file and what
// differs, and nothing of that image is sent.
//
// Several tapir servers may share one catalog. An image on a volume that
// another server owns and that is not in this server's changer, or on
// another server's holding disk, is read from that server (Peers,
// peers.go): its index server is asked for the payload ranges (the fetch
// request, fetch.go, served only to certificates with the server role)
// at the address it registered in the catalog, and this server passes the
// bytes on as if it had read them. The owning server checks the headers;
// a fetch is never passed on to a third server. This package must not
// know how a server finds its configuration or certificates: Peers is
// given a function that returns the TLS configuration.
//
// Everything a session can make the server do is bounded (the "Limits"
// table of the protocol): sessions per certificate name and in all, the
// TLS handshake and the idle time, the bytes of a request (read as they
// arrive, never allocated at the announced length), the paths of a plan
// and the entries of a plan or a listing. The work of a request stops when
// the shell goes away: a goroutine watches the connection while the
// request is handled and cancels the request's context. Error replies say
// what went wrong in the shell's terms and never name the server's files
// (errors.go); the whole error goes to the log.
//
// The protocol is written down in docs/format/index-protocol.md.
package indexd
