package fs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// publishServer starts a server with public tag "pub" and peers holding {fs:write},
// {fs:read, fs:write} and {admin}, beside the owner ("*"). The owner stores a private
// blob (returned) and points "pub" at a public one.
func publishServer(t *testing.T) (ts *testServer, keys map[string]ed25519.PrivateKey, secret Hash) {
	t.Helper()
	keys = map[string]ed25519.PrivateKey{
		"writer":     core.GenerateKey(),
		"readwriter": core.GenerateKey(),
		"admin":      core.GenerateKey(),
	}
	ts = startServer(t, Config{PublicTags: []string{"pub"}}, coretest.WithPeers(
		coretest.PeerFor("writer", keys["writer"], core.ScopeFSWrite),
		coretest.PeerFor("readwriter", keys["readwriter"], core.ScopeFSRead, core.ScopeFSWrite),
		coretest.PeerFor("admin", keys["admin"], core.ScopeAdmin),
	))
	keys["owner"] = ts.node.Owner
	keys["anonymous"] = nil
	owner := ts.client(t, core.TransportQUIC, ts.node.Owner)
	secret = upload(t, owner, "secret", []byte("the owner's secret"))
	upload(t, owner, "pub", []byte("public announcement"))
	return ts, keys, secret
}

// wantRefused checks that err is a Forbidden answer naming scope.
func wantRefused(t *testing.T, what string, err error, scope string) {
	t.Helper()
	var re *RemoteError
	if !errors.Is(err, ErrForbidden) || !errors.As(err, &re) {
		t.Fatalf("%s: %v, want ErrForbidden", what, err)
	}
	if !strings.Contains(re.Message, "needs scope "+scope) {
		t.Fatalf("%s: message %q does not name scope %s", what, re.Message, scope)
	}
}

// anonymousRefused checks that an anonymous peer still cannot read h.
func anonymousRefused(t *testing.T, ts *testServer, h Hash) {
	t.Helper()
	anon := ts.client(t, core.TransportQUIC, nil)
	if got, _, err := fetchAll(t, anon, h, All()); !errors.Is(err, ErrForbidden) {
		t.Fatalf("anonymous get of a private blob: %q, %v; want ErrForbidden", got, err)
	}
	if _, _, err := anon.Stat(context.Background(), h); !errors.Is(err, ErrForbidden) {
		t.Fatalf("anonymous stat of a private blob: %v; want ErrForbidden", err)
	}
}

// TestWriteOnlyPeerCannotPublish is the reviewer's reproduction: a peer holding only
// fs:write points a public tag at a private blob, and anonymous peers could read it.
func TestWriteOnlyPeerCannotPublish(t *testing.T) {
	ts, keys, secret := publishServer(t)
	ctx := context.Background()
	for _, tr := range coretest.Transports {
		anonymousRefused(t, ts, secret)
		w := ts.client(t, tr, keys["writer"])
		err := w.SetTag(ctx, "pub", HashAndFormat{Hash: secret, Format: FormatRaw})
		wantRefused(t, tr+": tag-set pub", err, core.ScopeFSRead)
		// A put under the public tag (whose last item could pin the secret or list it
		// in a hash sequence) is refused before any data goes up.
		_, err = w.NewUpload(ctx, "pub")
		wantRefused(t, tr+": put with tag pub", err, core.ScopeFSRead)
		anonymousRefused(t, ts, secret)
	}
}

// TestTagAccessByScope: who may set and delete public and private tags, through
// tag-set and through put with a tag, over the real server.
func TestTagAccessByScope(t *testing.T) {
	type rule struct {
		setPrivate, setPublic, putPrivate, putPublic, delPrivate, delPublic string // "" allowed, else the missing scope
	}
	for _, tc := range []struct {
		peer string
		rule
	}{
		{"anonymous", rule{"fs:write", "fs:write", "fs:write", "fs:write", "fs:write", "fs:write"}},
		{"admin", rule{"fs:write", "fs:write", "fs:write", "fs:write", "fs:write", "fs:write"}},
		{"writer", rule{"fs:read", "fs:read", "", "fs:read", "", ""}},
		{"readwriter", rule{"", "", "", "", "", ""}},
		{"owner", rule{"", "", "", "", "", ""}},
	} {
		t.Run(tc.peer, func(t *testing.T) {
			ts, keys, secret := publishServer(t)
			ctx := context.Background()
			c := ts.client(t, core.TransportQUIC, keys[tc.peer])
			pubBefore, _ := ts.store.Tag("pub")
			check := func(what string, err error, missing string) {
				t.Helper()
				if missing == "" {
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					return
				}
				wantRefused(t, what, err, missing)
			}
			tagged := func(name string, want Hash) bool {
				hf, ok := ts.store.Tag(name)
				return ok && hf.Hash == want
			}

			// tag-set
			err := c.SetTag(ctx, "mine", HashAndFormat{Hash: secret})
			check("tag-set private", err, tc.setPrivate)
			if got := tagged("mine", secret); got != (tc.setPrivate == "") {
				t.Fatalf("tag-set private: tag set %v", got)
			}
			err = c.SetTag(ctx, "pub", HashAndFormat{Hash: secret})
			check("tag-set public", err, tc.setPublic)
			if tc.setPublic != "" {
				if hf, _ := ts.store.Tag("pub"); hf != pubBefore {
					t.Fatalf("refused tag-set moved pub to %v", hf)
				}
				anonymousRefused(t, ts, secret)
			}
			// Restore, so later steps start from the same public tag.
			if err := ts.store.SetTag("pub", pubBefore); err != nil {
				t.Fatal(err)
			}

			// put with a tag
			data := []byte("uploaded by " + tc.peer)
			for _, p := range []struct {
				tag, missing string
			}{{"upload", tc.putPrivate}, {"pub", tc.putPublic}} {
				u, err := c.NewUpload(ctx, p.tag)
				check("put with tag "+p.tag, err, p.missing)
				if err != nil {
					continue
				}
				h, err := u.Add(bytes.NewReader(data), int64(len(data)), FormatRaw)
				if err != nil {
					t.Fatal(err)
				}
				if err := u.Commit(); err != nil {
					t.Fatalf("put with tag %s: commit: %v", p.tag, err)
				}
				if !tagged(p.tag, h) {
					t.Fatalf("put with tag %s: tag not set", p.tag)
				}
			}
			if tc.putPublic != "" {
				anonymousRefused(t, ts, secret)
			}

			// tag-delete
			if err := ts.store.SetTag("private", HashAndFormat{Hash: secret}); err != nil {
				t.Fatal(err)
			}
			err = c.DeleteTag(ctx, "private")
			check("tag-delete private", err, tc.delPrivate)
			if _, ok := ts.store.Tag("private"); ok != (tc.delPrivate != "") {
				t.Fatalf("tag-delete private: tag present %v", ok)
			}
			err = c.DeleteTag(ctx, "pub")
			check("tag-delete public", err, tc.delPublic)
			if _, ok := ts.store.Tag("pub"); ok != (tc.delPublic != "") {
				t.Fatalf("tag-delete public: tag present %v", ok)
			}
			anonymousRefused(t, ts, secret)
		})
	}
}

// TestUploadRevealsNothingWithoutRead: a peer without fs:read learns nothing about
// what the store holds from put: Have answers "no" (and pins nothing), and a hash
// sequence or collection may list only blobs uploaded on the same stream, whether or
// not the store has the others.
func TestUploadRevealsNothingWithoutRead(t *testing.T) {
	ts, keys, secret := publishServer(t)
	ctx := context.Background()
	missing := Sum([]byte("not in the store"))
	for _, tc := range []struct {
		peer string
		read bool
	}{{"writer", false}, {"readwriter", true}, {"owner", true}} {
		t.Run(tc.peer, func(t *testing.T) {
			c := ts.client(t, core.TransportQUIC, keys[tc.peer])
			u, err := c.NewUpload(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			have, err := u.Have(secret)
			if err != nil || have != tc.read {
				t.Fatalf("Have(present blob) = %v, %v; want %v", have, err, tc.read)
			}
			if have, err := u.Have(missing); err != nil || have {
				t.Fatalf("Have(missing blob) = %v, %v; want false", have, err)
			}

			// A hash sequence listing a blob of this stream is fine for everyone.
			own, err := u.Add(bytes.NewReader([]byte("own")), 3, FormatRaw)
			if err != nil {
				t.Fatal(err)
			}
			seq := HashSeq{own}.Bytes()
			if _, err := u.Add(bytes.NewReader(seq), int64(len(seq)), FormatHashSeq); err != nil {
				t.Fatalf("hash sequence of an uploaded blob: %v", err)
			}
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}

			// Listing a present blob not sent on the stream: allowed with fs:read,
			// refused without, with the same answer as for a missing blob.
			var msgs []string
			for _, child := range []Hash{secret, missing} {
				u, err := c.NewUpload(ctx, "")
				if err != nil {
					t.Fatal(err)
				}
				seq := HashSeq{child}.Bytes()
				_, err = u.Add(bytes.NewReader(seq), int64(len(seq)), FormatHashSeq)
				u.Close()
				if tc.read && child == secret {
					if err != nil {
						t.Fatalf("hash sequence of a present blob: %v", err)
					}
					continue
				}
				var re *RemoteError
				if !errors.Is(err, ErrNotFound) || !errors.As(err, &re) {
					t.Fatalf("hash sequence listing %s: %v, want ErrNotFound", child, err)
				}
				msg := strings.ReplaceAll(re.Message, child.String(), "CHILD")
				msgs = append(msgs, strings.ReplaceAll(msg, Sum(seq).String(), "SEQ"))
			}
			if !tc.read && msgs[0] != msgs[1] {
				t.Fatalf("answers differ for a present and a missing child:\n%s\n%s", msgs[0], msgs[1])
			}
		})
	}
}
