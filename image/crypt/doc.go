// Package crypt owns the encryption of an image payload: an age file
// (filippo.io/age, https://age-encryption.org/v1) whose plaintext is the
// framed compressed payload (zstd frames and seek table, gzip members, or
// plain tar bytes). The bytes on a volume are exactly what `age -d`
// reads, so `dd | age -d -i KEY | zstd -dc | tar -x` restores an image
// on a machine without tapir.
//
// It owns: the recipients of a dumptype (age1… strings, recipient files)
// and their fingerprints (what an image header names); the encrypting
// Writer (server-side encryption, over filippo.io/age), which counts the
// ciphertext, hashes it (the image's SHA-256 is of the bytes on the volume)
// and remembers the age header; the Encryptor, which writes the same age
// format itself (header, MAC, STREAM chunks) so that its state between two
// writes (EncState: offsets, hash state, the plaintext of the chunk being
// filled) can be saved and an interrupted age file continued in another
// process (a client-side encrypted dump that resumes); the Layout of age's
// STREAM (a header, a 16-byte nonce, then 64 KiB chunks each followed by a
// 16-byte tag), which maps a plaintext offset (the catalog's frame offsets)
// to the chunks that hold it; a Key unwrapped from an age header with an
// identity, which opens single chunks, so that a restore of one file
// decrypts only the chunks of its frames and never reads the end of the
// image; a ReaderAt and a stream Reader over a payload; identity files
// (written 0600, refused when others may read them) and the paper form of
// an identity.
//
// It does not know about volumes, the catalog, the network or tar: the
// caller places the bytes and keeps the header. The format is written
// down in docs/format/image.md ("Encryption").
package crypt
