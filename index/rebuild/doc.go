// Package rebuild recreates a catalog from the media alone: the labels of
// the volumes in a changer, the header of every tape file, the payloads
// (seek tables for zstd, member and frame boundaries found by reading for
// gzip and uncompressed payloads), the tar streams (the file index, with
// the offsets the client records, and the directory listings), and the
// images left on the holding disks. Nothing but the media is trusted:
// every header must match its own checksum (a tape file whose header does
// not is left out and reported, never recorded), and every payload is read
// whole and its SHA-256 checked against its header.
//
// The vaults' changers (Options.Vaults) are read as well: an image whole
// on the configuration's volumes is recorded there and each other set that
// holds it whole (read, SHA-256 checked) as a catalog copy; an image whole
// only on a vault's volumes is recorded there, unless it also waits on a
// holding disk (recorded waiting, the vault's as a copy). It does not know the
// configuration: which changers are whose is what the caller passes.
//
// Encrypted images (an age payload, image/crypt) need no key for their
// dump and parts: the encryption, the recipients' fingerprints and the age
// header come from the media, and the SHA-256 is of the ciphertext. Their
// frames, file index and listings are in the plaintext: with
// Options.Identities (tapir admin rebuild --identity FILE) the payload is
// decrypted chunk by chunk (every chunk authenticated, a damaged one named)
// and they are rebuilt as for a plain image; without an identity that
// opens it, the image is recorded without them and listed in
// Result.NoIndex. docs/keys.md says how to rebuild them later.
package rebuild
