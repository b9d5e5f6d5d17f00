package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/fs"
)

// fsData returns n pseudo-random bytes.
func fsData(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed, 42}).Read(b)
	return b
}

func b3sumFile(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("b3sum", "--no-names", path).Output()
	if err != nil {
		t.Fatalf("b3sum: %v (apt-get install b3sum)", err)
	}
	return strings.TrimSpace(string(out))
}

func runOK(t *testing.T, n *testNode, args ...string) string {
	t.Helper()
	out, err := n.Run(t, args...)
	if err != nil {
		t.Fatalf("alknet %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestFSCommandsE2E(t *testing.T) {
	n := startNode(t, "")
	work := t.TempDir()
	file := filepath.Join(work, "data.bin")
	os.WriteFile(file, fsData(3<<20+5, 1), 0o644)
	tree := filepath.Join(work, "tree")
	os.MkdirAll(filepath.Join(tree, "sub/deeper"), 0o755)
	os.WriteFile(filepath.Join(tree, "sub/deeper/x.txt"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(tree, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("sub/deeper/x.txt", filepath.Join(tree, "link"))
	for _, tr := range []string{"quic", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			id := []string{"--identity", n.ClientKey, "--transport", tr}
			out := runOK(t, n, append([]string{"fs", "put", n.Addr, file, tree}, id...)...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 {
				t.Fatalf("put printed %q", out)
			}
			if want := b3sumFile(t, file) + "  " + file; lines[0] != want {
				t.Fatalf("put line %q, want b3sum's %q", lines[0], want)
			}
			hash := strings.Fields(lines[0])[0]
			treeHash := strings.Fields(lines[1])[0]
			if !strings.HasSuffix(lines[1], tree+"/") {
				t.Fatalf("folder line %q", lines[1])
			}
			// get by hash and by tag
			dst := filepath.Join(t.TempDir(), "out.bin")
			runOK(t, n, append([]string{"fs", "get", n.Addr, hash, dst}, id...)...)
			assertSameFile(t, file, dst)
			dst2 := filepath.Join(t.TempDir(), "out2.bin")
			runOK(t, n, append([]string{"fs", "get", n.Addr, "data.bin", dst2}, id...)...)
			assertSameFile(t, file, dst2)
			// a folder restores as a tree
			restored := filepath.Join(t.TempDir(), "restored")
			runOK(t, n, append([]string{"fs", "get", n.Addr, treeHash, restored}, id...)...)
			if target, err := os.Readlink(filepath.Join(restored, "link")); err != nil || target != "sub/deeper/x.txt" {
				t.Fatalf("symlink: %q %v", target, err)
			}
			if fi, err := os.Stat(filepath.Join(restored, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
				t.Fatalf("mode: %v %v", fi, err)
			}
			// cat, with a range
			cat := runOK(t, n, append([]string{"fs", "cat", n.Addr, hash, "--range", "10-19"}, id...)...)
			want, _ := os.ReadFile(file)
			if cat != string(want[10:20]) {
				t.Fatal("cat --range differs")
			}
			// tags: ls, tag, delete
			ls := runOK(t, n, append([]string{"fs", "ls", n.Addr}, id...)...)
			if !strings.Contains(ls, "data.bin  "+hash+"  raw") || !strings.Contains(ls, "tree  "+treeHash+"  collection") {
				t.Fatalf("ls: %q", ls)
			}
			runOK(t, n, append([]string{"fs", "tag", n.Addr, "again", treeHash}, id...)...)
			ls = runOK(t, n, append([]string{"fs", "ls", n.Addr, "--json"}, id...)...)
			var tags []fs.Tag
			if err := json.Unmarshal([]byte(ls), &tags); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, tg := range tags {
				found = found || (tg.Name == "again" && tg.Format == fs.FormatCollection)
			}
			if !found {
				t.Fatalf("tag not listed: %s", ls)
			}
			runOK(t, n, append([]string{"fs", "tag", n.Addr, "again", "--delete"}, id...)...)
			runOK(t, n, append([]string{"fs", "gc", n.Addr}, id...)...)
			// --json put of an untagged copy, then gc removes it
			lonely := filepath.Join(t.TempDir(), "lonely")
			os.WriteFile(lonely, []byte("only here "+tr), 0o644)
			out = runOK(t, n, append([]string{"fs", "put", n.Addr, "--no-tag", "--json", lonely}, id...)...)
			var res struct {
				Hash fs.Hash `json:"hash"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			out = runOK(t, n, append([]string{"fs", "gc", n.Addr, "--json"}, id...)...)
			if !strings.Contains(out, `"removed":1`) {
				t.Fatalf("gc: %s", out)
			}
		})
	}
}

func assertSameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ", a, b)
	}
}

func TestFSAccessE2E(t *testing.T) {
	reader := filepath.Join(t.TempDir(), "reader.key")
	rk := core.GenerateKey()
	if err := core.WriteKeyFile(reader, rk, "reader"); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, `[[peers]]
name = "reader"
keys = ["`+string(core.NodeIDOf(rk.Public().(ed25519.PublicKey)))+`"]
scopes = ["fs:read"]
`)
	file := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(file, []byte("secret"), 0o644)
	out := runOK(t, n, "fs", "put", n.Addr, file, "--identity", n.ClientKey)
	hash := strings.Fields(out)[0]
	dst := filepath.Join(t.TempDir(), "o")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"anonymous get", []string{"fs", "get", n.Addr, hash, dst, "--anonymous"}},
		{"anonymous cat", []string{"fs", "cat", n.Addr, hash, "--anonymous"}},
		{"anonymous put", []string{"fs", "put", n.Addr, file, "--anonymous"}},
		{"reader put", []string{"fs", "put", n.Addr, file, "--identity", reader}},
		{"reader tag", []string{"fs", "tag", n.Addr, "x", hash, "--identity", reader}},
		{"reader gc", []string{"fs", "gc", n.Addr, "--identity", reader}},
	} {
		out, err := n.Run(t, c.args...)
		if err == nil || !strings.Contains(string(out), "needs scope") {
			t.Errorf("%s: %v %s", c.name, err, out)
		}
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("a refused get wrote its output")
	}
	if got := runOK(t, n, "fs", "cat", n.Addr, hash, "--identity", reader); got != "secret" {
		t.Fatalf("reader cat: %q", got)
	}
	// A public tag opens exactly that blob to anyone, after a reload.
	cfg, _ := os.ReadFile(n.Config)
	os.WriteFile(n.Config, bytes.Replace(cfg, []byte("public_tags = []"), []byte(`public_tags = ["secret.txt"]`), 1), 0o600)
	n.Reload(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := n.Run(t, "fs", "cat", n.Addr, hash, "--anonymous")
		if err == nil && string(out) == "secret" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("public tag not served after reload: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ls := runOK(t, n, "fs", "ls", n.Addr, "--anonymous"); !strings.Contains(ls, "secret.txt") {
		t.Fatalf("anonymous ls: %q", ls)
	}
}

// bigFile writes size bytes of a repeating pseudo-random block to path.
func bigFile(t testing.TB, path string, size int) {
	t.Helper()
	block := fsData(1<<20+3, 7)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for left := size; left > 0; {
		m := min(left, len(block))
		f.Write(block[:m])
		left -= m
	}
}

func TestFSGetResumesAfterKillE2E(t *testing.T) {
	n := startNode(t, "")
	work := t.TempDir()
	src := filepath.Join(work, "big")
	bigFile(t, src, 300<<20)
	out := runOK(t, n, "fs", "put", n.Addr, src, "--identity", n.ClientKey)
	hash := strings.Fields(out)[0]
	dst := filepath.Join(work, "copy")
	cmd := exec.Command(n.Bin, "fs", "get", n.Addr, hash, dst, "--identity", n.ClientKey)
	cmd.Env = n.Env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Kill it once it has recorded a verified prefix.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(dst + ".part.json")
		var st struct{ Verified uint64 }
		if err == nil && json.Unmarshal(b, &st) == nil && st.Verified > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("get finished (%v) before it could be killed", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-done
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("killed get left the final file")
	}
	again := runOK(t, n, "fs", "get", n.Addr, hash, dst, "--identity", n.ClientKey)
	if !strings.Contains(again, "resumed after") {
		t.Fatalf("second get did not resume: %q", again)
	}
	if b3sumFile(t, dst) != hash {
		t.Fatal("resumed file has the wrong hash")
	}
}

// checkStore opens a store folder as a restart would and verifies every blob in it.
func checkStore(t *testing.T, dir string) (blobs int) {
	t.Helper()
	s, err := fs.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Fatalf("tmp holds %d leftovers after Open", len(ents))
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "blobs", "*", "*"))
	for _, m := range matches {
		if strings.HasSuffix(m, ".obao") {
			if _, err := os.Stat(strings.TrimSuffix(m, ".obao")); err != nil {
				t.Fatalf("orphan outboard %s", m)
			}
			continue
		}
		h, err := fs.ParseHash(filepath.Base(m))
		if err != nil {
			t.Fatalf("stray file %s", m)
		}
		if err := s.Verify(h); err != nil {
			t.Fatalf("blob %s: %v", h, err)
		}
		blobs++
	}
	return blobs
}

// waitForTmp waits until an import in dir has written at least min bytes.
func waitForTmp(t *testing.T, dir string, min int64, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(filepath.Join(dir, "tmp"))
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && fi.Size() >= min {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("put finished (%v) before it could be killed", err)
		default:
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("import never started")
}

func TestFSKillDuringPutE2E(t *testing.T) {
	work := t.TempDir()
	small := filepath.Join(work, "small")
	os.WriteFile(small, []byte("kept"), 0o644)
	big := filepath.Join(work, "big")
	bigFile(t, big, 400<<20)
	bin := alknetBinary(t)

	t.Run("local store", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "store")
		if out, err := exec.Command(bin, "fs", "put", "--store", store, small).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		cmd := exec.Command(bin, "fs", "put", "--store", store, big)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		waitForTmp(t, store, 1<<20, done)
		cmd.Process.Kill() // SIGKILL
		<-done
		if n := checkStore(t, store); n != 1 {
			t.Fatalf("store holds %d blobs after the kill, want just the first", n)
		}
		// The store is usable: the same put now completes.
		out, err := exec.Command(bin, "fs", "put", "--store", store, big).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), b3sumFile(t, big)) {
			t.Fatalf("put after the kill: %v %s", err, out)
		}
		checkStore(t, store)
	})

	t.Run("server", func(t *testing.T) {
		n := startNode(t, "")
		runOK(t, n, "fs", "put", n.Addr, small, "--identity", n.ClientKey)
		put := exec.Command(n.Bin, "fs", "put", n.Addr, big, "--identity", n.ClientKey)
		put.Env = n.Env
		if err := put.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- put.Wait() }()
		store := filepath.Join(n.Dir, "blobs")
		waitForTmp(t, store, 1<<20, done)
		n.cmd.Process.Kill() // SIGKILL the server mid-import
		n.cmd.Wait()
		put.Process.Kill() // it would wait for the idle timeout to notice
		<-done
		if got := checkStore(t, store); got != 1 {
			t.Fatalf("store holds %d blobs after the kill, want 1", got)
		}
	})
}

// BenchmarkFSGetVsSFTPGet downloads the same 128 MiB file with "alknet fs get"
// (verified against its BLAKE3 hash) and "alknet sftp get" from the same node, each a
// fresh process over QUIC, and reports fs's throughput relative to sftp's.
func BenchmarkFSGetVsSFTPGet(b *testing.B) {
	const size = 128 << 20
	n := startNode(b, "")
	src := filepath.Join(n.Dir, "sftp", "big")
	os.MkdirAll(filepath.Dir(src), 0o755)
	bigFile(b, src, size)
	out, err := n.Run(b, "fs", "put", n.Addr, src, "--identity", n.ClientKey)
	if err != nil {
		b.Fatalf("%v %s", err, out)
	}
	hash := strings.Fields(string(out))[0]
	work := b.TempDir()
	run := func(args ...string) time.Duration {
		start := time.Now()
		if out, err := n.Run(b, args...); err != nil {
			b.Fatalf("alknet %v: %v %s", args, err, out)
		}
		return time.Since(start)
	}
	var fsTime, sftpTime time.Duration
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(work, "fs-copy")
		os.Remove(dst)
		fsTime += run("fs", "get", n.Addr, hash, dst, "--identity", n.ClientKey, "--transport", "quic")
		dst2 := filepath.Join(work, "sftp-copy")
		os.Remove(dst2)
		if _, err := n.Run(b, "sftp", "--help"); err != nil {
			b.Skip("alknet sftp get is not available")
		}
		sftpTime += run("sftp", "get", n.Addr, "/big", dst2, "--identity", n.ClientKey, "--transport", "quic", "--no-resume")
	}
	b.ReportMetric(float64(b.N)*size/fsTime.Seconds()/(1<<20), "fs_MiB/s")
	b.ReportMetric(float64(b.N)*size/sftpTime.Seconds()/(1<<20), "sftp_MiB/s")
	b.ReportMetric(sftpTime.Seconds()/fsTime.Seconds(), "ratio_fs_vs_sftp")
}

func TestFSCorruptBlobE2E(t *testing.T) {
	n := startNode(t, "")
	src := filepath.Join(t.TempDir(), "f")
	data := fsData(1<<20, 3)
	os.WriteFile(src, data, 0o644)
	hash := strings.Fields(runOK(t, n, "fs", "put", n.Addr, src, "--identity", n.ClientKey))[0]
	// Flip one byte in the middle of group 10 of the stored blob.
	blob := filepath.Join(n.Dir, "blobs", "blobs", hash[:2], hash)
	f, err := os.OpenFile(blob, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	const flip = 10*16384 + 999
	f.WriteAt([]byte{data[flip] ^ 0xff}, flip)
	f.Close()
	dst := filepath.Join(t.TempDir(), "out")
	out, err := n.Run(t, "fs", "get", n.Addr, hash, dst, "--identity", n.ClientKey)
	if err == nil || !strings.Contains(string(out), "byte offset 163840") {
		t.Fatalf("get of a corrupt blob: %v %s", err, out)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("corrupt get produced its output file")
	}
	part, _ := os.ReadFile(dst + ".part")
	if len(part) > 10*16384 || !bytes.Equal(part, data[:len(part)]) {
		t.Fatalf("partial file: %d bytes, not a verified prefix", len(part))
	}
	cat, err := n.Run(t, "fs", "cat", n.Addr, hash, "--identity", n.ClientKey)
	if err == nil || len(cat) > 10*16384+200 || !bytes.HasPrefix(data, cat[:10*16384]) {
		t.Fatalf("cat of a corrupt blob: %v, %d bytes", err, len(cat))
	}
}

func TestFSLocalStoreE2E(t *testing.T) {
	bin := alknetBinary(t)
	work := t.TempDir()
	store := filepath.Join(work, "store")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("alknet %v: %v\n%s", args, err, out)
		}
		return out
	}
	tree := filepath.Join(work, "tree")
	os.MkdirAll(filepath.Join(tree, "a"), 0o755)
	os.WriteFile(filepath.Join(tree, "a", "f"), fsData(70000, 9), 0o644)
	os.Symlink("a/f", filepath.Join(tree, "l"))
	line := must("fs", "put", "--store", store, tree, "--tag", "snap")
	hash := strings.Fields(line)[0]
	if ls := must("fs", "ls", "--store", store); !strings.Contains(ls, "snap  "+hash+"  collection") {
		t.Fatalf("ls: %s", ls)
	}
	restored := filepath.Join(work, "restored")
	must("fs", "get", "--store", store, "snap", restored)
	assertSameFile(t, filepath.Join(tree, "a", "f"), filepath.Join(restored, "a", "f"))
	if target, _ := os.Readlink(filepath.Join(restored, "l")); target != "a/f" {
		t.Fatalf("symlink -> %q", target)
	}
	fileHash := b3sumFile(t, filepath.Join(tree, "a", "f"))
	if got := must("fs", "cat", "--store", store, fileHash); got != string(fsData(70000, 9)) {
		t.Fatal("cat differs")
	}
	must("fs", "tag", "--store", store, "--delete", "snap")
	if out := must("fs", "gc", "--store", store); !strings.Contains(out, "removed 2 blobs") {
		t.Fatalf("gc: %s", out)
	}
	if out, err := run("fs", "get", "--store", store, hash, filepath.Join(work, "x")); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("get after gc: %v %s", err, out)
	}
	// Wrong argument counts are usage errors.
	if out, err := run("fs", "get", "--store", store, hash); err == nil || !strings.Contains(out, "with --store") {
		t.Fatalf("bad args: %v %s", err, out)
	}
}

func TestFSStoreInUseE2E(t *testing.T) {
	n := startNode(t, "")
	out, err := n.Run(t, "fs", "gc", "--store", filepath.Join(n.Dir, "blobs"))
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("gc on a served store: %v %s", err, out)
	}
}
