package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/creack/pty"
)

// The SFTP end-to-end tests drive stock OpenSSH clients (sftp, scp, sshfs) through
// "alknet connect" as ProxyCommand to the "sftp" subsystem of alknet's SSH server,
// and "alknet sftp" over the alknet/sftp ALPN.

// sftpTestNode is a running node with SFTP peers.
type sftpTestNode struct {
	*testNode
	root       string            // the served folder
	keys       map[string]string // peer name -> key file
	knownHosts string
}

// sftpPeers are the peers every SFTP test node lists, beside the owner ("*").
var sftpPeers = []struct {
	name   string
	scopes []string
}{
	{"rw", []string{core.ScopeSSHSFTP, core.ScopeSFTPWrite}},
	{"ro", []string{core.ScopeSSHSFTP, core.ScopeSFTPRead}},
	{"nosftp", []string{core.ScopeSSHSFTP, core.ScopeSSHExec}}, // SSH, but no SFTP scope
	{"nossh", []string{core.ScopeSFTPWrite}},                   // SFTP, but not over SSH
}

// startSFTPNode runs "alknet init" and "alknet serve" with the SFTP peers, and stops
// the server when the test ends. extra is appended to the config.
func startSFTPNode(tb testing.TB, extra string) *sftpTestNode {
	tb.Helper()
	for _, tool := range []string{"ssh", "sftp"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("OpenSSH %s not installed (apt-get install openssh-client)", tool)
		}
	}
	keysDir := tb.TempDir()
	sn := &sftpTestNode{keys: map[string]string{}, knownHosts: filepath.Join(keysDir, "known_hosts")}
	var peers strings.Builder
	for _, p := range sftpPeers {
		k := core.GenerateKey()
		path := filepath.Join(keysDir, p.name+".key")
		if err := core.WriteKeyFile(path, k, p.name); err != nil {
			tb.Fatal(err)
		}
		sn.keys[p.name] = path
		fmt.Fprintf(&peers, "\n[[peers]]\nname = %q\nkeys = [%q]\nscopes = [", p.name, core.NodeIDOf(k.Public().(ed25519.PublicKey)))
		for i, s := range p.scopes {
			if i > 0 {
				peers.WriteString(", ")
			}
			fmt.Fprintf(&peers, "%q", s)
		}
		peers.WriteString("]\n")
	}
	sn.testNode = startNode(tb, extra+peers.String())
	sn.keys["owner"] = sn.ClientKey
	sn.root = filepath.Join(sn.Dir, "sftp")
	return sn
}

// sshOpts are the OpenSSH options reaching the node's SSH server as peer key over
// transport ("" for the default), for ssh, sftp, scp and sshfs alike.
func (n *sftpTestNode) sshOpts(key, transport string) []string {
	return []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + n.knownHosts, "-o", "StrictHostKeyChecking=accept-new",
		"-o", "HostKeyAlias=alknet-sftp-test", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
		"-o", "IdentityFile=" + n.keys[key],
		"-o", "ProxyCommand=" + n.ProxyCommand("alknet/ssh", n.keys[key], transport)}
}

// runTool runs a program in the node's environment and returns stdout, stderr and
// the exit code.
func runTool(tb testing.TB, env []string, stdin []byte, name string, args ...string) (string, string, int) {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return out.String(), errb.String(), code
}

// sftpBatch runs OpenSSH's sftp with a batch script as peer key.
func (n *sftpTestNode) sftpBatch(tb testing.TB, key, transport, script string) (string, string, int) {
	tb.Helper()
	bf := filepath.Join(tb.TempDir(), "batch")
	if err := os.WriteFile(bf, []byte(script), 0o600); err != nil {
		tb.Fatal(err)
	}
	args := append(n.sshOpts(key, transport), "-b", bf, "alknet")
	return runTool(tb, n.Env, nil, "sftp", args...)
}

// randomFile writes size random bytes to path.
func randomFile(tb testing.TB, path string, size int64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// cmpFiles compares two files with cmp(1).
func cmpFiles(tb testing.TB, a, b string) {
	tb.Helper()
	if out, err := exec.Command("cmp", a, b).CombinedOutput(); err != nil {
		tb.Fatalf("cmp %s %s: %v %s", a, b, err, out)
	}
}

// treeState records the served folder (names, modes, sizes, contents' first bytes and
// modification times) to show that nothing changed.
func treeState(tb testing.TB, dir string) string {
	tb.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(&b, "%s error %v\n", p, err)
			return nil
		}
		info, _ := d.Info()
		fmt.Fprintf(&b, "%s %v %d %d", p, info.Mode(), info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %x", data[:min(len(data), 64)])
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func TestSFTPOpenSSHBatch(t *testing.T) {
	n := startSFTPNode(t, "")
	local := t.TempDir()
	sizes := map[string]int64{"zero": 0, "one": 1, "big": 100 << 20}
	for name, size := range sizes {
		randomFile(t, filepath.Join(local, name), size)
	}
	for _, tr := range []string{"quic", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			back := t.TempDir()
			names := []string{"zero", "one", "big"}
			if tr == "tcp" && testing.Short() {
				names = names[:2]
			}
			var script strings.Builder
			fmt.Fprintf(&script, "mkdir /%s\ncd /%s\n", tr, tr)
			for _, name := range names {
				fmt.Fprintf(&script, "put %s %s\n", filepath.Join(local, name), name)
			}
			fmt.Fprintf(&script, "ls -l\nmkdir sub\n")
			for _, name := range names {
				fmt.Fprintf(&script, "rename %s sub/%s\n", name, name)
			}
			for _, name := range names {
				fmt.Fprintf(&script, "get sub/%s %s\n", name, filepath.Join(back, name))
			}
			fmt.Fprintf(&script, "ls sub\nmkdir gone\nrmdir gone\nrm sub/one\nls -1 sub\n")
			out, errOut, code := n.sftpBatch(t, "rw", tr, script.String())
			if code != 0 {
				t.Fatalf("sftp -b exit %d\n%s\n%s", code, out, errOut)
			}
			for _, name := range names {
				cmpFiles(t, filepath.Join(local, name), filepath.Join(back, name))
				if name != "one" {
					cmpFiles(t, filepath.Join(local, name), filepath.Join(n.root, tr, "sub", name))
				}
			}
			if !strings.Contains(out, "zero") || !strings.Contains(out, "big") && len(names) == 3 {
				t.Errorf("ls output lacks the files:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(n.root, tr, "sub", "one")); !os.IsNotExist(err) {
				t.Errorf("rm left the file: %v", err)
			}
			if _, err := os.Stat(filepath.Join(n.root, tr, "gone")); !os.IsNotExist(err) {
				t.Errorf("rmdir left the folder: %v", err)
			}
			if ents, _ := os.ReadDir(filepath.Join(n.root, tr)); len(ents) != 1 {
				t.Errorf("unexpected entries (temporary files left?): %v", ents)
			}
		})
	}
}

func TestSFTPOpenSSHScp(t *testing.T) {
	n := startSFTPNode(t, "")
	if _, err := exec.LookPath("scp"); err != nil {
		t.Skip("scp not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	randomFile(t, src, 5<<20+3)
	opts := n.sshOpts("rw", "")
	// Upload, then download under another name. OpenSSH 9 scp speaks SFTP.
	if out, errOut, code := runTool(t, n.Env, nil, "scp", append(opts, src, "alknet:/copied")...); code != 0 {
		t.Fatalf("scp upload: exit %d %s %s", code, out, errOut)
	}
	cmpFiles(t, src, filepath.Join(n.root, "copied"))
	back := filepath.Join(dir, "back")
	if out, errOut, code := runTool(t, n.Env, nil, "scp", append(opts, "alknet:/copied", back)...); code != 0 {
		t.Fatalf("scp download: exit %d %s %s", code, out, errOut)
	}
	cmpFiles(t, src, back)
	// -r of a folder, and -p keeps times.
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "a/b"), 0o755)
	randomFile(t, filepath.Join(tree, "a/b/f"), 1000)
	mt := time.Unix(1_500_000_000, 0)
	os.Chtimes(filepath.Join(tree, "a/b/f"), mt, mt)
	if out, errOut, code := runTool(t, n.Env, nil, "scp", append(opts, "-r", "-p", tree, "alknet:/")...); code != 0 {
		t.Fatalf("scp -r: exit %d %s %s", code, out, errOut)
	}
	cmpFiles(t, filepath.Join(tree, "a/b/f"), filepath.Join(n.root, "tree/a/b/f"))
	if st, err := os.Stat(filepath.Join(n.root, "tree/a/b/f")); err != nil || !st.ModTime().Equal(mt) {
		t.Errorf("scp -p: mtime %v (%v), want %v", st.ModTime(), err, mt)
	}
}

func TestSFTPOpenSSHDenied(t *testing.T) {
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	os.WriteFile(filepath.Join(n.root, "good"), []byte("good data"), 0o644)
	// A link to /etc made on the server side.
	if err := os.Symlink("/etc", filepath.Join(n.root, "escape")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	one := filepath.Join(dir, "one")
	randomFile(t, one, 1)

	t.Run("escape through a symlink", func(t *testing.T) {
		got := filepath.Join(dir, "passwd")
		out, errOut, code := n.sftpBatch(t, "rw", "", "get escape/passwd "+got+"\n")
		if code == 0 {
			t.Fatalf("get escape/passwd succeeded: %s", out)
		}
		// OpenSSH's sftp globs the name first; the server's "permission denied" to
		// its lstat makes the glob come back empty, which it reports as not found.
		if !strings.Contains(errOut, "Permission denied") && !strings.Contains(errOut, "not found") {
			t.Errorf("stderr %q: want the file refused", errOut)
		}
		if _, err := os.Stat(got); !os.IsNotExist(err) {
			t.Errorf("a local passwd appeared: %v", err)
		}
		for _, script := range []string{"ls /escape/\n", "ls -l /escape/passwd\n", "ls /escape/*\n", "cd /escape\nls\n"} {
			out, errOut, _ := n.sftpBatch(t, "rw", "", script)
			var listed []string
			for _, line := range strings.Split(out, "\n") {
				if !strings.HasPrefix(line, "sftp>") {
					listed = append(listed, line)
				}
			}
			if l := strings.Join(listed, "\n"); strings.Contains(l, "passwd") || strings.Contains(l, "hosts") {
				t.Errorf("%q listed /etc: %s %s", script, out, errOut)
			}
		}
		// The server itself says "permission denied" (seen by a client that does not glob).
		out, errOut, code = n.sftpBatch(t, "rw", "", "chmod 600 /escape/passwd\n")
		if code == 0 || !strings.Contains(errOut, "Permission denied") {
			t.Errorf("chmod through escape: exit %d %q %q", code, out, errOut)
		}
		_, _, code = n.sftpBatch(t, "rw", "", "get /../../etc/passwd "+got+"\n")
		if code == 0 {
			t.Error("get /../../etc/passwd succeeded")
		}
	})
	t.Run("read-only put", func(t *testing.T) {
		before := treeState(t, n.root)
		for _, script := range []string{
			"put " + one + " new\n",
			"put " + one + " good\n",
			"mkdir d\n",
			"rm good\n",
			"rename good other\n",
			"chmod 777 good\n",
			"ln -s good link\n",
		} {
			out, errOut, code := n.sftpBatch(t, "ro", "", script)
			if code == 0 {
				t.Errorf("%q as read-only peer: exit 0 %s", script, out)
			}
			if !strings.Contains(errOut, "Permission denied") {
				t.Errorf("%q: stderr %q lacks Permission denied", script, errOut)
			}
		}
		if after := treeState(t, n.root); after != before {
			t.Errorf("the tree changed:\nbefore\n%s\nafter\n%s", before, after)
		}
		// Reading works.
		got := filepath.Join(dir, "good")
		if _, errOut, code := n.sftpBatch(t, "ro", "", "get good "+got+"\n"); code != 0 {
			t.Fatalf("read-only get: %s", errOut)
		}
		if b, _ := os.ReadFile(got); string(b) != "good data" {
			t.Fatalf("read-only get: %q", b)
		}
	})
	t.Run("no sftp scope", func(t *testing.T) {
		before := treeState(t, n.root)
		for _, key := range []string{"nosftp", "nossh"} {
			out, errOut, code := n.sftpBatch(t, key, "", "ls\nput "+one+" x\n")
			if code == 0 {
				t.Errorf("peer %s: sftp exit 0: %s", key, out)
			}
			if strings.Contains(out, "good") {
				t.Errorf("peer %s listed the folder", key)
			}
			t.Logf("peer %s: %s", key, strings.TrimSpace(errOut))
		}
		if after := treeState(t, n.root); after != before {
			t.Errorf("the tree changed")
		}
	})
}

func TestSFTPSSHFS(t *testing.T) {
	if _, err := exec.LookPath("sshfs"); err != nil {
		t.Skip("sshfs not installed (apt-get install sshfs fuse3): sshfs test skipped")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE on this machine (/dev/fuse: %v): sshfs test skipped", err)
	}
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	os.WriteFile(filepath.Join(n.root, "hello"), []byte("hello from the server\n"), 0o644)
	mnt := t.TempDir()
	args := []string{"-f", "alknet:/", mnt}
	opts := n.sshOpts("rw", "")
	for i := 0; i < len(opts); i += 2 {
		if opts[i] == "-F" {
			continue
		}
		args = append(args, "-o", opts[i+1])
	}
	args = append(args, "-o", "ssh_command=ssh -F /dev/null")
	cmd := exec.Command("sshfs", args...)
	cmd.Env = n.Env
	var errb coretest.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		exec.Command("fusermount3", "-u", "-z", mnt).Run()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	mounted := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(mnt, "hello")); err == nil && string(b) == "hello from the server\n" {
			mounted = true
			break
		}
		select {
		case err := <-done:
			done <- err
			msg := errb.String()
			if strings.Contains(msg, "ermission denied") || strings.Contains(msg, "fuse: device not found") || strings.Contains(msg, "Operation not permitted") {
				t.Skipf("sshfs cannot mount here (%v: %s): sshfs test skipped", err, strings.TrimSpace(msg))
			}
			t.Fatalf("sshfs exited: %v %s", err, msg)
		default:
		}
	}
	if !mounted {
		t.Fatalf("sshfs did not mount in time: %s", errb.String())
	}
	// Write through the mount, read back, on the server's disk too.
	data := make([]byte, 3<<20+11)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(mnt, "written"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "written")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("read back through sshfs: %d bytes, %v", len(b), err)
	}
	// FUSE sends the close after close(2) returns; the server puts the upload in
	// place when the close arrives.
	onDisk := func(name string, want []byte) {
		t.Helper()
		var b []byte
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if b, _ = os.ReadFile(filepath.Join(n.root, name)); bytes.Equal(b, want) {
				return
			}
		}
		t.Fatalf("server disk holds %d bytes in %s, want %d", len(b), name, len(want))
	}
	onDisk("written", data)
	// Append and rewrite in place.
	f, err := os.OpenFile(filepath.Join(mnt, "written"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tail"))
	f.Close()
	data = append(data, "tail"...)
	onDisk("written", data)
	if b, err := os.ReadFile(filepath.Join(mnt, "written")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("read back after append: %d bytes, %v", len(b), err)
	}
	// Write then rename at once, as editors and cp do.
	if err := os.WriteFile(filepath.Join(mnt, "tmp"), []byte("renamed at once"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "final")); err != nil {
		t.Fatalf("rename right after write: %v", err)
	}
	onDisk("final", []byte("renamed at once"))
	os.Mkdir(filepath.Join(mnt, "dir"), 0o755)
	if err := os.Rename(filepath.Join(mnt, "written"), filepath.Join(mnt, "dir", "moved")); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(filepath.Join(mnt, "dir")); err != nil || len(ents) != 1 {
		t.Fatalf("readdir through sshfs: %v %v", ents, err)
	}
	onDisk("dir/moved", data)
	out, err := exec.Command("df", "-P", mnt).CombinedOutput()
	if err != nil || !strings.Contains(string(out), mnt) {
		t.Fatalf("df: %v %s", err, out)
	}
	fields := strings.Fields(strings.Split(strings.TrimSpace(string(out)), "\n")[1])
	if len(fields) < 4 || fields[1] == "0" {
		t.Fatalf("df shows no size: %s", out)
	}
}

// TestSFTPCLI drives "alknet sftp" over the alknet/sftp ALPN.
func TestSFTPCLI(t *testing.T) {
	n := startSFTPNode(t, "")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	randomFile(t, src, 20<<20+5)
	empty := filepath.Join(dir, "empty")
	randomFile(t, empty, 0)
	for _, tr := range []string{"quic", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			run := func(key string, args ...string) (string, int) {
				full := append([]string{"sftp"}, args[0])
				full = append(full, n.Addr)
				full = append(full, args[1:]...)
				full = append(full, "--identity", n.keys[key], "--transport", tr)
				out, errOut, code := runTool(t, n.Env, nil, n.Bin, full...)
				return out + errOut, code
			}
			if out, code := run("rw", "put", src, "/"+tr+"-file"); code != 0 {
				t.Fatalf("put: %d %s", code, out)
			}
			cmpFiles(t, src, filepath.Join(n.root, tr+"-file"))
			if out, code := run("rw", "put", empty, "/"+tr+"-empty"); code != 0 {
				t.Fatalf("put empty: %d %s", code, out)
			}
			back := filepath.Join(dir, tr+"-back")
			if out, code := run("ro", "get", "/"+tr+"-file", back); code != 0 {
				t.Fatalf("get: %d %s", code, out)
			}
			cmpFiles(t, src, back)
			if out, code := run("ro", "get", "/"+tr+"-empty", back+"-empty"); code != 0 {
				t.Fatalf("get empty: %d %s", code, out)
			}
			cmpFiles(t, empty, back+"-empty")
			out, code := run("ro", "ls", "/")
			if code != 0 || !strings.Contains(out, tr+"-file") || !strings.Contains(out, fmt.Sprint(20<<20+5)) {
				t.Fatalf("ls: %d %s", code, out)
			}
			if strings.Contains(out, "\r") || strings.Contains(out, "%") {
				t.Errorf("progress output without a terminal: %q", out)
			}
			// Refusals.
			before := treeState(t, n.root)
			if out, code := run("ro", "put", src, "/"+tr+"-file"); code == 0 || !strings.Contains(out, "permission denied") {
				t.Errorf("read-only put: %d %s", code, out)
			}
			for _, key := range []string{"nosftp"} {
				if out, code := run(key, "ls", "/"); code == 0 || strings.Contains(out, tr+"-file") {
					t.Errorf("%s ls: %d %s", key, code, out)
				}
			}
			anon := []string{"sftp", "ls", n.Addr, "/", "--anonymous", "--transport", tr}
			if out, errOut, code := runTool(t, n.Env, nil, n.Bin, anon...); code == 0 {
				t.Errorf("anonymous ls: %s %s", out, errOut)
			}
			if after := treeState(t, n.root); after != before {
				t.Errorf("the tree changed")
			}
		})
	}
}

// TestSFTPCLIResume interrupts a get and runs it again.
func TestSFTPCLIResume(t *testing.T) {
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	remote := filepath.Join(n.root, "big")
	randomFile(t, remote, 200<<20)
	local := filepath.Join(t.TempDir(), "big")
	part := local + ".alknet-part"
	cmd := exec.Command(n.Bin, "sftp", "get", n.Addr, "/big", local, "--identity", n.keys["ro"], "--requests", "2")
	cmd.Env = n.Env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the client once part of the file arrived.
	var cut int64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if st, err := os.Stat(part); err == nil && st.Size() > 1<<20 {
			cmd.Process.Kill()
			break
		}
	}
	cmd.Wait()
	st, err := os.Stat(part)
	if err != nil {
		t.Fatalf("no part file after the interruption: %v", err)
	}
	cut = st.Size()
	if cut == 0 || cut >= 200<<20 {
		t.Skipf("the download was not cut in the middle (%d bytes)", cut)
	}
	if _, err := os.Stat(local); !os.IsNotExist(err) {
		t.Fatalf("the interrupted download already holds the final name: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("part file mode %v, want 0600", st.Mode().Perm())
	}
	meta := local + ".alknet-part.meta"
	if mst, err := os.Stat(meta); err != nil || mst.Mode().Perm() != 0o600 {
		t.Errorf("no private record beside the part: %v", err)
	}
	out, errOut, code := runTool(t, n.Env, nil, n.Bin, "sftp", "get", n.Addr, "/big", local, "--identity", n.keys["ro"])
	if code != 0 {
		t.Fatalf("resumed get: %d %s %s", code, out, errOut)
	}
	if !strings.Contains(errOut, fmt.Sprintf("resuming /big at byte %d", cut)) {
		t.Errorf("the second get did not resume at %d: %q", cut, errOut)
	}
	cmpFiles(t, remote, local)
	for _, f := range []string{part, meta} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", filepath.Base(f), err)
		}
	}
	lst, err := os.Stat(local)
	if err != nil {
		t.Fatal(err)
	}
	if rst, err := os.Stat(remote); err == nil && lst.Mode().Perm() != rst.Mode().Perm()&^currentUmask() {
		t.Errorf("the finished file's mode %v, for a remote %v", lst.Mode().Perm(), rst.Mode().Perm())
	}
}

// TestSFTPCLIProgress: "alknet sftp get" draws a progress bar when stderr is a
// terminal (a pty here), and none otherwise (the other tests).
func TestSFTPCLIProgress(t *testing.T) {
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	randomFile(t, filepath.Join(n.root, "f"), 8<<20)
	local := filepath.Join(t.TempDir(), "f")
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command(n.Bin, "sftp", "get", n.Addr, "/f", local, "--identity", n.keys["ro"])
	cmd.Env = n.Env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&screen, ptmx)
		close(copied)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("get: %v %s", err, out.String())
	}
	<-copied
	if !strings.Contains(screen.String(), "100%") || !strings.Contains(screen.String(), "MB") {
		t.Errorf("no progress bar on the terminal: %q", screen.String())
	}
	if out.Len() != 0 {
		t.Errorf("stdout got %q", out.String())
	}
	cmpFiles(t, filepath.Join(n.root, "f"), local)
}

// TestSFTPOpenSSHResume: OpenSSH's reput (an append-mode open, parallel writes at the
// file's end) and reget finish partial files byte-exact.
func TestSFTPOpenSSHResume(t *testing.T) {
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	randomFile(t, full, 30<<20+77)
	data, _ := os.ReadFile(full)
	os.WriteFile(filepath.Join(n.root, "partial"), data[:7<<20+3], 0o644)
	os.WriteFile(filepath.Join(n.root, "whole"), data, 0o644)
	local := filepath.Join(dir, "local")
	os.WriteFile(local, data[:5<<20+1], 0o644)
	out, errOut, code := n.sftpBatch(t, "rw", "", fmt.Sprintf("reput %s partial\nreget whole %s\n", full, local))
	if code != 0 {
		t.Fatalf("sftp exit %d %s %s", code, out, errOut)
	}
	cmpFiles(t, full, filepath.Join(n.root, "partial"))
	cmpFiles(t, full, local)
}

// TestSFTPInterruptedPut: a client killed mid-upload leaves the good file as it was,
// and its temporary file goes away.
func TestSFTPInterruptedPut(t *testing.T) {
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	good := filepath.Join(n.root, "good")
	os.WriteFile(good, []byte("the good version"), 0o644)
	src := filepath.Join(t.TempDir(), "src")
	randomFile(t, src, 300<<20)
	// TLS/TCP: the server hears of the killed client at once (QUIC would wait for the
	// idle timeout).
	cmd := exec.Command(n.Bin, "sftp", "put", n.Addr, src, "/good", "--identity", n.keys["rw"], "--transport", "tcp", "--requests", "2")
	cmd.Env = n.Env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	partFound := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !partFound; time.Sleep(2 * time.Millisecond) {
		ents, _ := os.ReadDir(n.root)
		for _, e := range ents {
			if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".alknet-part") && info.Size() > 1<<20 {
				partFound = true
			}
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !partFound {
		t.Fatal("no upload in progress was seen")
	}
	var ents []os.DirEntry
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ents, _ = os.ReadDir(n.root); len(ents) == 1 {
			break
		}
	}
	if len(ents) != 1 {
		t.Fatalf("temporary file left behind: %v", ents)
	}
	if b, _ := os.ReadFile(good); string(b) != "the good version" {
		t.Fatalf("the good file was replaced: %d bytes", len(b))
	}
}

// TestSFTPCLIResumeCheck: a get resumes from LOCAL.alknet-part only when the record
// beside it names the same remote file (node, path, size, modification time) and the
// part's last bytes match the remote file's; otherwise it starts over, says so, and
// never leaves a mix of two files. The interrupted download is set up by hand: a part
// file holding the first bytes of the old file, and (or not) its record.
func TestSFTPCLIResumeCheck(t *testing.T) {
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	node, _, _ := strings.Cut(n.Addr, "@")
	const size, cut = 3<<20 + 7, 1<<20 + 3
	random := func(size int) []byte {
		b := make([]byte, size)
		rand.Read(b)
		return b
	}
	old := random(size)
	oldTime := time.Unix(1700000000, 0)
	newTime := oldTime.Add(time.Hour)
	oldMeta := func(remote string) *sftpPartMeta {
		return &sftpPartMeta{Version: 1, Node: node, Path: remote, Size: size, MTime: oldTime.Unix()}
	}
	flipped := bytes.Clone(old)
	flipped[cut-10] ^= 1 // same size and time; differs in the part's last bytes
	appended := append(bytes.Clone(old), random(1000)...)
	otherNode := core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey))
	tests := []struct {
		name    string
		remote  []byte    // the remote file at the second get
		mtime   time.Time // its modification time
		meta    func(remote string) *sftpPartMeta
		rawMeta string // instead of meta: the record's bytes
		resume  bool
		notice  string // in the notice of starting over
	}{
		{name: "unchanged", remote: old, mtime: oldTime, meta: oldMeta, resume: true},
		{name: "same-size-new-content-and-time", remote: random(size), mtime: newTime, meta: oldMeta, notice: "changed"},
		{name: "larger", remote: random(size + 1000), mtime: newTime, meta: oldMeta, notice: "changed"},
		{name: "appended-new-time", remote: appended, mtime: newTime, meta: oldMeta, notice: "changed"},
		{name: "smaller", remote: random(size - 1000), mtime: newTime, meta: oldMeta, notice: "changed"},
		{name: "same-size-and-time-other-bytes", remote: flipped, mtime: oldTime, meta: oldMeta, notice: "differ"},
		{name: "no-record", remote: old, mtime: oldTime, notice: "no record"},
		{name: "garbled-record", remote: old, mtime: oldTime, rawMeta: "{\"version\":1,", notice: "no record"},
		{name: "empty-record", remote: old, mtime: oldTime, rawMeta: "", notice: "no record"},
		{name: "other-path", remote: old, mtime: oldTime, notice: "another file", meta: func(string) *sftpPartMeta {
			return oldMeta("/elsewhere")
		}},
		{name: "other-node", remote: old, mtime: oldTime, notice: "another file", meta: func(remote string) *sftpPartMeta {
			m := oldMeta(remote)
			m.Node = string(otherNode)
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remote := "/" + tt.name
			rfile := filepath.Join(n.root, tt.name)
			if err := os.WriteFile(rfile, tt.remote, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(rfile, tt.mtime, tt.mtime); err != nil {
				t.Fatal(err)
			}
			local := filepath.Join(t.TempDir(), "out")
			part, meta := local+".alknet-part", local+".alknet-part.meta"
			if err := os.WriteFile(part, old[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.meta != nil:
				if err := writeSFTPPartMeta(meta, *tt.meta(remote)); err != nil {
					t.Fatal(err)
				}
			case tt.notice == "no record" && tt.name != "no-record":
				if err := os.WriteFile(meta, []byte(tt.rawMeta), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, errOut, code := runTool(t, n.Env, nil, n.Bin, "sftp", "get", n.Addr, remote, local, "--identity", n.keys["ro"])
			if code != 0 {
				t.Fatalf("get: exit %d %s %s", code, out, errOut)
			}
			t.Logf("stderr: %s", errOut)
			cmpFiles(t, rfile, local)
			resumed := strings.Contains(errOut, fmt.Sprintf("resuming %s at byte %d", remote, cut))
			if resumed != tt.resume {
				t.Errorf("resumed %v, want %v: %q", resumed, tt.resume, errOut)
			}
			if !tt.resume {
				if want := "not resuming " + remote + ": "; !strings.Contains(errOut, want) || !strings.Contains(errOut, tt.notice) || !strings.Contains(errOut, "starting over") {
					t.Errorf("no notice %q...%q...starting over: %q", want, tt.notice, errOut)
				}
			}
			for _, f := range []string{part, meta} {
				if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s left behind: %v", filepath.Base(f), err)
				}
			}
		})
	}
}

// TestSFTPCLIGetKeepsMode: the finished file gets the remote permission bits less the
// umask, as scp and sftp give them: a script stays executable, a private file private.
func TestSFTPCLIGetKeepsMode(t *testing.T) {
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	for _, mode := range []os.FileMode{0o755, 0o600, 0o640} {
		name := fmt.Sprintf("f%o", mode)
		remote := filepath.Join(n.root, name)
		os.WriteFile(remote, []byte("#!/bin/sh\necho hi\n"), 0o600)
		os.Chmod(remote, mode)
		local := filepath.Join(t.TempDir(), name)
		if out, errOut, code := runTool(t, n.Env, nil, n.Bin, "sftp", "get", n.Addr, "/"+name, local, "--identity", n.keys["ro"]); code != 0 {
			t.Fatalf("get %s: exit %d\n%s%s", name, code, out, errOut)
		}
		st, err := os.Stat(local)
		if err != nil {
			t.Fatal(err)
		}
		if want := mode &^ currentUmask(); st.Mode().Perm() != want {
			t.Errorf("%s: local mode %04o, want %04o", name, st.Mode().Perm(), want)
		}
	}
}

// TestSFTPCLIStdio: "get ADDR REMOTE -" writes the file to standard output and
// "put ADDR - REMOTE" uploads standard input, byte-exact.
func TestSFTPCLIStdio(t *testing.T) {
	n := startSFTPNode(t, "")
	os.MkdirAll(n.root, 0o700)
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	if out, errOut, code := runTool(t, n.Env, data, n.Bin, "sftp", "put", n.Addr, "-", "/from-stdin", "--identity", n.keys["rw"]); code != 0 {
		t.Fatalf("put -: exit %d\n%s%s", code, out, errOut)
	}
	if got, err := os.ReadFile(filepath.Join(n.root, "from-stdin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded file differs (%d bytes, %v)", len(got), err)
	}
	out, errOut, code := runTool(t, n.Env, nil, n.Bin, "sftp", "get", n.Addr, "/from-stdin", "-", "--identity", n.keys["ro"])
	if code != 0 || out != string(data) {
		t.Fatalf("get -: exit %d, %d bytes (want %d)\n%s", code, len(out), len(data), errOut)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "-")); !os.IsNotExist(err) {
		t.Errorf("get - created a file named -")
	}
}
