package sftp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/pkg/sftp"
)

// linkStep is one client request of a scripted sequence.
type linkStep struct {
	op   string // mkdir, symlink, rename, posix-rename, hardlink
	a, b string // mkdir a; symlink b -> a; rename/posix-rename/hardlink a to b
}

func (s linkStep) run(c *sftp.Client) error {
	switch s.op {
	case "mkdir":
		return c.Mkdir(s.a)
	case "symlink":
		return c.Symlink(s.a, s.b)
	case "rename":
		return c.Rename(s.a, s.b)
	case "posix-rename":
		return c.PosixRename(s.a, s.b)
	case "hardlink":
		return c.Link(s.a, s.b)
	}
	panic("unknown step " + s.op)
}

// serve runs the step directly on a session's file system over root, returning the
// server's own error.
func (s linkStep) serve(t testing.TB, root string) error {
	t.Helper()
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := newFsys(r, true, slog.New(slog.DiscardHandler))
	req := func(method, p, target string) *sftp.Request {
		q := sftp.NewRequest(method, p)
		q.Target = target
		return q
	}
	switch s.op {
	case "symlink":
		q := req("Symlink", "", s.b)
		q.Filepath = s.a // the link's contents, as the client sent them
		return f.Filecmd(q)
	case "rename":
		return f.Filecmd(req("Rename", s.a, s.b))
	case "posix-rename":
		return f.PosixRename(req("PosixRename", s.a, s.b))
	case "hardlink":
		return f.Filecmd(req("Link", s.a, s.b))
	}
	t.Fatalf("step %s not replayable", s.op)
	return nil
}

// escapingLinks lists the symbolic links under root (relative paths) whose target
// leads outside root, judged lexically from the link's own folder and by resolving it
// through an os.Root (which follows intermediate links).
func escapingLinks(t testing.TB, root string) []string {
	t.Helper()
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		relp, _ := filepath.Rel(root, p)
		relp = filepath.ToSlash(relp)
		dest, err := os.Readlink(p)
		if err != nil {
			return err
		}
		j := path.Join(path.Dir(relp), dest)
		_, serr := r.Stat(relp)
		if path.IsAbs(dest) || j == ".." || strings.HasPrefix(j, "../") || isEscape(serr) {
			out = append(out, relp+" -> "+dest)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLinksCannotBeMovedOutward: the reviewer's jail escape and its variants. A
// symbolic link accepted in one place must not be renamed or hard-linked to a place
// where it points outside the served folder, neither on its own nor inside a moved
// folder. Each sequence must be refused with "permission denied" and leave no new
// outward link on disk.
func TestLinksCannotBeMovedOutward(t *testing.T) {
	outside := t.TempDir()
	cases := []struct {
		name  string
		plant map[string]string // links made on the server side first: name -> target
		dirs  []string          // folders made on the server side first
		steps []linkStep
	}{
		{name: "exploit with rename", steps: []linkStep{
			{"mkdir", "/e", ""}, {"symlink", "..", "/e/writer"}, {"rename", "/e/writer", "/writer"}}},
		{name: "exploit with posix-rename", steps: []linkStep{
			{"mkdir", "/e", ""}, {"symlink", "..", "/e/writer"}, {"posix-rename", "/e/writer", "/writer"}}},
		{name: "exploit with hardlink", steps: []linkStep{
			{"mkdir", "/e", ""}, {"symlink", "..", "/e/writer"}, {"hardlink", "/e/writer", "/writer"}}},
		{name: "outward file link", steps: []linkStep{
			{"mkdir", "/e", ""}, {"symlink", "../in.txt", "/e/l3"}, {"rename", "/e/l3", "/l3"}}},
		{name: "folder holding a link moved up", steps: []linkStep{
			{"mkdir", "/a", ""}, {"mkdir", "/a/b", ""}, {"symlink", "../../in.txt", "/a/b/l"},
			{"rename", "/a/b", "/b"}}},
		{name: "folder holding a link posix-renamed up", steps: []linkStep{
			{"mkdir", "/a", ""}, {"mkdir", "/a/b", ""}, {"mkdir", "/a/b/c", ""},
			{"symlink", "../../..", "/a/b/c/l"}, {"posix-rename", "/a/b", "/b"}}},
		{name: "planted link renamed", dirs: []string{"e"}, plant: map[string]string{"e/writer": ".."},
			steps: []linkStep{{"rename", "/e/writer", "/writer"}}},
		{name: "planted link posix-renamed", dirs: []string{"e"}, plant: map[string]string{"e/writer": ".."},
			steps: []linkStep{{"posix-rename", "/e/writer", "/writer"}}},
		{name: "planted link hard-linked", dirs: []string{"e"}, plant: map[string]string{"e/writer": ".."},
			steps: []linkStep{{"hardlink", "/e/writer", "/writer"}}},
		{name: "planted link in a folder moved up", dirs: []string{"a/b"}, plant: map[string]string{"a/b/l": "../../in.txt"},
			steps: []linkStep{{"rename", "/a/b", "/b"}}},
		{name: "planted deep link in a folder posix-renamed up", dirs: []string{"a/b/c/d"},
			plant: map[string]string{"a/b/c/d/l": "../../../in.txt"},
			steps: []linkStep{{"posix-rename", "/a/b", "/b"}}},
		{name: "planted absolute link renamed", dirs: []string{"e"}, plant: map[string]string{"e/abs": outside},
			steps: []linkStep{{"rename", "/e/abs", "/abs"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, Config{})
			root := s.Root()
			os.WriteFile(filepath.Join(root, "in.txt"), []byte("inside"), 0o644)
			for _, d := range tc.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for name, dest := range tc.plant {
				if err := os.Symlink(dest, filepath.Join(root, name)); err != nil {
					t.Fatal(err)
				}
			}
			before := escapingLinks(t, root)
			c, _ := session(t, s, writer)
			var err error
			var failed linkStep
			for _, st := range tc.steps {
				if err = st.run(c); err != nil {
					failed = st
					break
				}
			}
			if err == nil {
				t.Errorf("every step succeeded")
			} else if statusCode(err) != codePermission {
				t.Errorf("%s %s %s: %v; want permission denied", failed.op, failed.a, failed.b, err)
			} else if err := failed.serve(t, root); !errors.Is(err, ErrUnsafeLink) {
				// pkg/sftp's client shows only "permission denied": replay the step
				// on the server side (nothing changed) to check the reason.
				t.Errorf("%s %s %s on the server: %v, want ErrUnsafeLink", failed.op, failed.a, failed.b, err)
			}
			for _, l := range escapingLinks(t, root) {
				if !slices.Contains(before, l) {
					t.Errorf("outward link left on disk: %s", l)
				}
			}
		})
	}
}

// TestLinksThatStayInside: the links people make (to a sibling, into a subfolder)
// still work, and can be renamed, hard-linked and moved inside folders.
func TestLinksThatStayInside(t *testing.T) {
	s := newServer(t, Config{})
	c, _ := session(t, s, writer)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.MkdirAll("/d/sub"))
	writeFile(t, c, "/d/file", []byte("sibling"))
	writeFile(t, c, "/d/sub/deep", []byte("deep"))
	steps := []struct {
		step     linkStep
		read     string
		wantData string
	}{
		{linkStep{"symlink", "file", "/d/sib"}, "/d/sib", "sibling"},
		{linkStep{"symlink", "./file", "/d/dot"}, "/d/dot", "sibling"},
		{linkStep{"symlink", "sub/deep", "/d/down"}, "/d/down", "deep"},
		{linkStep{"symlink", "sub", "/d/subdir"}, "/d/subdir/deep", "deep"},
		{linkStep{"rename", "/d/sib", "/d/sib2"}, "/d/sib2", "sibling"},
		{linkStep{"posix-rename", "/d/sib2", "/d/sib3"}, "/d/sib3", "sibling"},
		{linkStep{"hardlink", "/d/down", "/d/down2"}, "/d/down2", "deep"},
		{linkStep{"mkdir", "/moved", ""}, "/d/down", "deep"},
		{linkStep{"rename", "/d", "/moved/d"}, "/moved/d/down", "deep"},
		{linkStep{"posix-rename", "/moved/d", "/d"}, "/d/subdir/deep", "deep"},
		{linkStep{"rename", "/d/sub", "/d/sub2"}, "/d/sub2/deep", "deep"},
		// A link whose target is gone dangles, inside the folder.
		{linkStep{"rename", "/d/down", "/down"}, "", ""},
	}
	for _, st := range steps {
		if err := st.step.run(c); err != nil {
			t.Fatalf("%s %s %s: %v", st.step.op, st.step.a, st.step.b, err)
		}
		if st.read != "" {
			if got := readFile(t, c, st.read); string(got) != st.wantData {
				t.Fatalf("after %s %s: read %s = %q", st.step.op, st.step.a, st.read, got)
			}
		}
	}
	if st, err := c.Lstat("/d/down2"); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("hard link of a link: %v %v", st, err)
	}
	if l := escapingLinks(t, s.Root()); len(l) != 0 {
		t.Fatalf("outward links: %v", l)
	}
}

// servePeer runs one session for peer and returns ServeStream's result and, if the
// session started, a client.
func servePeer(t *testing.T, s *Server, peer core.Peer) (*sftp.Client, error) {
	t.Helper()
	a, b := coretest.StreamPipe()
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- s.ServeStream(context.Background(), b, peer)
		b.Close()
		close(finished)
	}()
	c, err := sftp.NewClientPipe(a, a)
	if err != nil {
		a.Close()
		<-finished
		return nil, <-done
	}
	t.Cleanup(func() {
		c.Close()
		a.Close()
		<-finished
	})
	return c, nil
}

// TestPerPeerFolderLink: a per-peer folder that is a symbolic link (planted while
// the folder was shared, or by anyone else) is never followed: the session is refused.
func TestPerPeerFolderLink(t *testing.T) {
	cases := []struct {
		name string
		make func(t *testing.T, root, data string) // makes root/alice
	}{
		{"link to the data folder", func(t *testing.T, root, data string) {
			os.Symlink("..", filepath.Join(root, "alice"))
		}},
		{"absolute link outside", func(t *testing.T, root, data string) {
			os.Symlink(data, filepath.Join(root, "alice"))
		}},
		{"link to another peer's folder", func(t *testing.T, root, data string) {
			os.Mkdir(filepath.Join(root, "bob"), 0o700)
			os.WriteFile(filepath.Join(root, "bob", "client.key"), []byte("secret"), 0o600)
			os.Symlink("bob", filepath.Join(root, "alice"))
		}},
		{"a file", func(t *testing.T, root, data string) {
			os.WriteFile(filepath.Join(root, "alice"), []byte("x"), 0o600)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			os.WriteFile(filepath.Join(data, "client.key"), []byte("secret"), 0o600)
			s := newServer(t, Config{Root: filepath.Join(data, "sftp"), PerPeer: true})
			tc.make(t, s.Root(), data)
			c, err := servePeer(t, s, peerWith("alice", core.ScopeSFTPWrite))
			if c != nil {
				if f, err := c.Open("/client.key"); err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					t.Fatalf("session served through the link: read %q", b)
				}
				t.Fatal("session served through the link")
			}
			if !errors.Is(err, ErrPeerFolder) {
				t.Fatalf("ServeStream: %v, want ErrPeerFolder", err)
			}
		})
	}
}

// TestExploitThenPerPeer replays the reviewer's whole attack: plant a link while the
// folder is shared, then switch to per-peer folders and log in under the link's name.
// The data folder's keys must stay out of reach.
func TestExploitThenPerPeer(t *testing.T) {
	data := t.TempDir()
	secret := []byte("owner key, scope *")
	os.WriteFile(filepath.Join(data, "client.key"), secret, 0o600)
	root := filepath.Join(data, "sftp")

	shared := newServer(t, Config{Root: root})
	c, _ := session(t, shared, writer)
	c.Mkdir("/e")
	c.Symlink("..", "/e/writer")
	c.Rename("/e/writer", "/writer")
	c.PosixRename("/e/writer", "/writer")
	c.Link("/e/writer", "/writer")
	c.Close()
	shared.Close()

	perPeer := newServer(t, Config{Root: root, PerPeer: true})
	c2, err := servePeer(t, perPeer, writer)
	if c2 == nil {
		if err == nil {
			t.Fatal("session refused without an error")
		}
		return
	}
	if f, err := c2.Open("/client.key"); err == nil {
		b, _ := io.ReadAll(f)
		f.Close()
		if bytes.Equal(b, secret) {
			t.Fatal("read the data folder's client.key")
		}
	}
	if _, err := os.Lstat(filepath.Join(data, "writer")); err == nil {
		t.Fatal("per-peer folder created in the data folder")
	}
}

// TestUploadTempReplaced: the temporary file of an upload is visible to the client,
// which may put something else under its name before closing the handle. The close
// must then move nothing onto the target.
func TestUploadTempReplaced(t *testing.T) {
	for _, replace := range []string{"folder", "symlink"} {
		t.Run(replace, func(t *testing.T) {
			s := newServer(t, Config{})
			c, _ := session(t, s, writer)
			writeFile(t, c, "/keep", []byte("old"))
			f, err := c.OpenFile("/keep", os.O_WRONLY|os.O_TRUNC)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("new")); err != nil {
				t.Fatal(err)
			}
			ents, err := c.ReadDir("/")
			if err != nil {
				t.Fatal(err)
			}
			var tmp string
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), tempSuffix) {
					tmp = "/" + e.Name()
				}
			}
			if tmp == "" {
				t.Fatalf("no temporary file in %v", ents)
			}
			if err := c.Remove(tmp); err != nil {
				t.Fatal(err)
			}
			switch replace {
			case "folder":
				err = c.Mkdir(tmp)
			case "symlink":
				err = c.Symlink("keep", tmp)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); statusCode(err) != codeFailure {
				t.Fatalf("close: %v, want a failure", err)
			}
			st, err := os.Lstat(filepath.Join(s.Root(), "keep"))
			if err != nil || !st.Mode().IsRegular() {
				t.Fatalf("target replaced: %v %v", st, err)
			}
			if _, err := os.Lstat(filepath.Join(s.Root(), tmp)); err != nil {
				t.Fatalf("the client's %s was moved or removed: %v", replace, err)
			}
		})
	}
}

// loggedServer is newServer with its log kept (info and up) for the test to read.
func loggedServer(t *testing.T) (*Server, *coretest.SyncBuffer) {
	t.Helper()
	logs := &coretest.SyncBuffer{}
	s, err := NewServer(Config{Root: t.TempDir()}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// plantSite lays out a deploy tool's tree on the server side, with links that climb
// ("..") and an absolute one, none of which SFTP would let a client make:
//
//	site/shared/conf/app.toml
//	site/current/conf -> ../shared/conf        (depth 1 below site, climbs 1)
//	site/current/deep/up -> ../../shared/conf  (depth 2 below site, climbs 2)
//	site/current/self -> ../current            (depth 1 below site, climbs 1)
//	other/out -> ../in.txt                     (depth 0 below other, climbs 1)
//	other/abs -> <an absolute path outside>
func plantSite(t *testing.T, root, outside string) {
	t.Helper()
	for _, d := range []string{"site/shared/conf", "site/current/deep", "other", "archive"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"in.txt": "inside", "site/shared/conf/app.toml": "conf"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"site/current/conf":    "../shared/conf",
		"site/current/deep/up": "../../shared/conf",
		"site/current/self":    "../current",
		"other/out":            "../in.txt",
		"other/abs":            outside,
	}
	for name, dest := range links {
		if err := os.Symlink(dest, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRenameKeepsLinkMeaning: a rename within one folder (the moved entry keeps its
// parent) changes where no link resolves, so it is allowed whatever links the moved
// folder holds; a move to another folder is allowed when every link inside climbs no
// higher than the moved folder (k <= d), and refused, with the reason logged, when
// one climbs out of it.
func TestRenameKeepsLinkMeaning(t *testing.T) {
	outside := t.TempDir()
	type read struct{ path, want string }
	cases := []struct {
		name  string
		step  linkStep
		rule  string // "" when allowed; else the logged rule's start
		reads []read // after an allowed step: reading through the links
	}{
		{name: "folder renamed in its folder", step: linkStep{"rename", "/site", "/site-old"},
			reads: []read{{"/site-old/current/conf/app.toml", "conf"}, {"/site-old/current/deep/up/app.toml", "conf"},
				{"/site-old/current/self/conf/app.toml", "conf"}}},
		{name: "folder posix-renamed in its folder", step: linkStep{"posix-rename", "/site", "/site-old"},
			reads: []read{{"/site-old/current/conf/app.toml", "conf"}}},
		{name: "subfolder renamed in its folder", step: linkStep{"rename", "/site/current", "/site/cur2"},
			reads: []read{{"/site/cur2/conf/app.toml", "conf"}, {"/site/cur2/deep/up/app.toml", "conf"}}},
		{name: "folder with outward-climbing and absolute links renamed in its folder",
			step: linkStep{"rename", "/other", "/other2"}, reads: []read{{"/other2/out", "inside"}}},
		{name: "climbing link renamed in its folder", step: linkStep{"rename", "/site/current/conf", "/site/current/conf2"},
			reads: []read{{"/site/current/conf2/app.toml", "conf"}}},
		{name: "absolute link renamed in its folder", step: linkStep{"posix-rename", "/other/abs", "/other/abs2"}},
		{name: "folder moved elsewhere, every link climbing no higher than it (k <= d)",
			step:  linkStep{"rename", "/site", "/archive/site"},
			reads: []read{{"/archive/site/current/conf/app.toml", "conf"}, {"/archive/site/current/deep/up/app.toml", "conf"}}},
		{name: "same, posix-rename", step: linkStep{"posix-rename", "/site", "/archive/site"},
			reads: []read{{"/archive/site/current/self/conf/app.toml", "conf"}}},
		{name: "folder moved elsewhere, a link climbing out of it (k > d)",
			step: linkStep{"rename", "/site/current", "/archive/current"}, rule: ruleClimbsOut},
		{name: "folder posix-renamed elsewhere, a link climbing out of it",
			step: linkStep{"posix-rename", "/other", "/archive/other"}, rule: ruleClimbsOut},
		{name: "climbing link moved to another folder", step: linkStep{"rename", "/site/current/conf", "/site/conf"},
			rule: ruleDotDot},
		{name: "climbing link hard-linked in its folder", step: linkStep{"hardlink", "/site/current/conf", "/site/current/conf2"},
			rule: ruleDotDot},
		{name: "absolute link moved to another folder", step: linkStep{"rename", "/other/abs", "/archive/abs"},
			rule: ruleAbsolute},
		{name: "client link climbing", step: linkStep{"symlink", "../in.txt", "/site/l"}, rule: ruleDotDot},
		{name: "client link through an outward link", step: linkStep{"symlink", "abs/x", "/other/l"}, rule: ruleThroughLink},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, logs := loggedServer(t)
			root := s.Root()
			plantSite(t, root, outside)
			before := escapingLinks(t, root)
			c, _ := session(t, s, writer)
			err := tc.step.run(c)
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("%s %s %s: %v", tc.step.op, tc.step.a, tc.step.b, err)
				}
				for _, r := range tc.reads {
					if got := readFile(t, c, r.path); string(got) != r.want {
						t.Errorf("read %s = %q, want %q", r.path, got, r.want)
					}
				}
				if strings.Contains(logs.String(), "refused") {
					t.Errorf("refusal logged for an allowed step:\n%s", logs)
				}
			} else {
				if statusCode(err) != codePermission {
					t.Fatalf("%s %s %s: %v; want permission denied", tc.step.op, tc.step.a, tc.step.b, err)
				}
				if err := tc.step.serve(t, root); !errors.Is(err, ErrUnsafeLink) {
					t.Errorf("on the server: %v, want ErrUnsafeLink", err)
				}
				log := logs.String()
				for _, want := range []string{"sftp: link operation refused", "peer=writer", "op=" + tc.step.op,
					"rule=\"" + strings.ReplaceAll(tc.rule, `"`, `\"`)} {
					if !strings.Contains(log, want) {
						t.Errorf("log lacks %s:\n%s", want, log)
					}
				}
			}
			want := before
			if tc.rule == "" && tc.step.op != "hardlink" {
				// The outward links are the same ones, some under new names.
				want = nil
				for _, l := range before {
					if from := tc.step.a[1:]; l == from || strings.HasPrefix(l, from+"/") || strings.HasPrefix(l, from+" ") {
						l = tc.step.b[1:] + l[len(from):]
					}
					want = append(want, l)
				}
			}
			got := escapingLinks(t, root)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("outward links on disk: %v, want %v", got, want)
			}
		})
	}
}

// TestClimb: how far a link's target climbs before it goes down, and the targets
// whose climb cannot be told from the text.
func TestClimb(t *testing.T) {
	cases := []struct {
		dest string
		k    int
		ok   bool
	}{
		{"file", 0, true}, {"./sub/file", 0, true}, {".", 0, true}, {"a//b/", 0, true},
		{"..", 1, true}, {"../shared/conf", 1, true}, {"./../../x", 2, true}, {"../.././..", 3, true},
		{"", 0, false}, {"/etc", 0, false}, {"a/../x", 0, false}, {"../a/../../x", 0, false}, {"a/..", 0, false},
	}
	for _, tc := range cases {
		if k, ok := climb(tc.dest); k != tc.k || ok != tc.ok {
			t.Errorf("climb(%q) = %d, %v; want %d, %v", tc.dest, k, ok, tc.k, tc.ok)
		}
		if got, want := safeLinkTarget(tc.dest), tc.ok && tc.k == 0; got != want {
			t.Errorf("safeLinkTarget(%q) = %v, want %v", tc.dest, got, want)
		}
	}
}
