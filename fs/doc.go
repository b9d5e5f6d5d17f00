// Package fs is a BLAKE3 content-addressed blob store with verified streaming, served
// on the alknet/fs ALPN.
//
// A blob is any sequence of bytes, named by its BLAKE3-256 hash (the same hex that
// b3sum prints), so equal content is stored once. Every blob larger than 16 KiB has an
// outboard: its BLAKE3 hash tree in bao's pre-order layout, with chunk groups of 16
// KiB. With it, a reader checks every 16 KiB group against the root hash as it
// arrives, whole or by byte ranges: a corrupt byte, on disk or in transit, stops the
// transfer within one group, with a [*VerifyError] naming the offset, and no
// unverified byte is ever handed on.
// A blob whose files in the store do not fit together (a missing or cut outboard, a
// data file that grew or shrank) is refused before any byte is sent, with an error
// wrapping [ErrCorrupt] that names the blob and the problem (a [*RemoteError] from a
// server).
//
// # The store
//
//	s, err := fs.Open("blobs", nil)
//	h, pin, err := s.Import(ctx, r, size)   // hash + outboard + write, in one pass
//	defer pin.Release()
//	err = s.SetTag("backup", fs.HashAndFormat{Hash: h})
//
// [Store.Import] writes to a temporary file while it hashes, fsyncs, and renames into
// place, so a crash at any point leaves the whole blob or nothing; [Open] cleans up
// what an interrupted import left. Memory stays bounded whatever the blob size.
// Tags are named pins; [Store.GC] removes what no tag reaches (following the children
// of hash sequences and collections) and no temporary pin holds, and is safe while
// imports run.
//
// # Collections
//
// A [HashSeq] is a blob of concatenated hashes. A [Collection] is a directory
// snapshot (paths, permission bits, file hashes, symlinks) in a canonical encoding, so
// the same tree always has the same hash. [PutPath] stores a file or a whole folder;
// [GetTree] restores a collection into a folder, refusing any entry that would escape
// it. [NewFS] and [Store.FS] give a read-only [io/fs.FS] view of a collection.
//
// # The protocol
//
// [Server] serves a store as a [github.com/alkdev/alknet/core.Handler]: one request
// per stream (get with ranges, get-many, stat, put, tag list/set/delete, gc), so it
// runs unchanged over QUIC and TLS over TCP. Reading needs scope fs:read, except what a
// public tag reaches; writing needs fs:write; gc needs admin. [Client] is the other
// side. The framing is documented in docs/fs-protocol.md.
//
// No peer can grant what it does not hold. A public tag (config public_tags) makes
// its blob, and a collection's or hash sequence's children, readable by anyone, so
// setting one, by tag-set or by a put that ends by setting it, needs fs:read as well
// as fs:write; without fs:read a peer could publish any blob whose hash it knows.
// Naming a stored blob by hash needs fs:read in general, so a peer with only fs:write
// cannot learn what the store holds either: tag-set of any tag needs fs:read, a put's
// pin ([Upload.Have]) answers "no" (the client then sends the blob), and a hash
// sequence or collection it uploads may list only blobs sent on the same put. Such a
// peer tags what it uploads with the put's own (private) tag. Deleting a tag, public or
// not, only takes away, so fs:write suffices. A refusal is a [*RemoteError] wrapping
// [ErrForbidden] whose message names the missing scope.
//
// Both [*Store] and [*Client] implement [Source] (verified fetches) and the upload
// types implement [Sink], so [GetFile] (which resumes an interrupted download from its
// verified prefix), [GetTree], [Cat] and [PutPath] work on a local store and a remote
// one alike.
package fs
