package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// vaultEnv is an isolated HOME for the alknet binary.
func vaultEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_DATA_HOME="+filepath.Join(home, ".local/share"))
}

// vaultRun runs the alknet binary without a controlling terminal, with stdin and extra
// files (fd 3, 4, ...), and returns stdout and stderr apart.
func vaultRun(t *testing.T, env []string, stdin []byte, extra []*os.File, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, alknetBinary(t), args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no /dev/tty: never prompt
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// passFD returns a pipe whose read end carries pass, for --*passphrase-fd 3.
func passFD(t *testing.T, pass string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(pass + "\n")
	w.Close()
	t.Cleanup(func() { r.Close() })
	return r
}

func writePass(t *testing.T, dir, pass string) string {
	t.Helper()
	p := filepath.Join(dir, "pass-"+pass)
	if err := os.WriteFile(p, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var mnemonicLine = regexp.MustCompile(`(?m)^\s*((?:[a-z]+ ){23}[a-z]+)\s*$`)

// setSSHListen points [ssh] listen in config at a free loopback port; false if the
// config has no [ssh] section (ssh not wired in).
func setSSHListen(t *testing.T, config string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	head, sec, ok := strings.Cut(string(b), "\n[ssh]\n")
	if !ok || !strings.Contains(sec, "\nlisten = \"\"\n") && !strings.HasPrefix(sec, "listen = \"\"\n") {
		return "", false
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	re := regexp.MustCompile(`(?m)^listen = ""$`)
	loc := re.FindStringIndex(sec)
	sec = sec[:loc[0]] + `listen = "127.0.0.1:` + port + `"` + sec[loc[1]:]
	if err := os.WriteFile(config, []byte(head+"\n[ssh]\n"+sec), 0o600); err != nil {
		t.Fatal(err)
	}
	return port, true
}

// startVaultServe runs "alknet serve" on config with args and extra files and waits
// for it to listen. It stops when the test ends.
func startVaultServe(t *testing.T, env []string, dir string, extra []*os.File, args ...string) *testNode {
	t.Helper()
	n := &testNode{Bin: alknetBinary(t), Dir: dir, Config: filepath.Join(dir, "alknet.toml"), ClientKey: filepath.Join(dir, "client.key"), Env: env}
	n.start(t, args, func(cmd *exec.Cmd) {
		cmd.ExtraFiles = extra
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	})
	return n
}

// TestVaultRestoreSameIdentity: a node created with "init --vault" and another restored
// from its mnemonic in a separate folder (another passphrase) have the same node ID
// ("alknet id", "alknet serve", a pinned TLS handshake) and the same SSH host key
// (vault pubkey, and what OpenSSH's ssh-keyscan sees from the running servers).
func TestVaultRestoreSameIdentity(t *testing.T) {
	env := vaultEnv(t)
	secrets := t.TempDir()
	passA, passB := writePass(t, secrets, "pass-a"), writePass(t, secrets, "pass-b")
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")

	outA, errA, err := vaultRun(t, env, nil, nil, "init", "--dir", dirA, "--listen", "127.0.0.1:0", "--vault", "--vault-passphrase-file", passA, "--vault-work-factor", "12")
	if err != nil {
		t.Fatalf("init --vault: %v\n%s%s", err, outA, errA)
	}
	m := mnemonicLine.FindStringSubmatch(errA)
	if m == nil || !strings.Contains(errA, "shown only once") {
		t.Fatalf("init --vault did not show a 24-word mnemonic with a warning:\n%s", errA)
	}
	mnemonic := m[1]
	if strings.Contains(outA, mnemonic) {
		t.Fatal("the mnemonic went to stdout, which is the node address")
	}
	addrA := strings.TrimSpace(outA)
	idFromInit, _, _ := strings.Cut(addrA, "@")

	outB, errB, err := vaultRun(t, env, []byte(mnemonic+"\n"), []*os.File{passFD(t, "pass-b")},
		"init", "--dir", dirB, "--listen", "127.0.0.1:0", "--vault", "--vault-restore", "--vault-passphrase-fd", "3", "--vault-work-factor", "12")
	if err != nil {
		t.Fatalf("init --vault --vault-restore: %v\n%s%s", err, outB, errB)
	}
	if strings.Contains(errB, mnemonic) {
		t.Fatal("restore printed the mnemonic")
	}
	if idB, _, _ := strings.Cut(strings.TrimSpace(outB), "@"); idB != idFromInit {
		t.Fatalf("init addresses differ: %s vs %s", addrA, outB)
	}

	for _, dir := range []string{dirA, dirB} {
		st, err := os.Stat(filepath.Join(dir, "vault.age"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s/vault.age: %v %v", dir, st, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "node.key")); err == nil {
			t.Fatalf("%s: init --vault still wrote node.key", dir)
		}
		cfg, err := loadConfig(filepath.Join(dir, "alknet.toml"))
		if err != nil || !cfg.Vault.Enabled {
			t.Fatalf("%s: [vault] enabled not set: %v", dir, err)
		}
	}

	// alknet id: same node ID, each with its own passphrase (file and descriptor).
	idA, e, err := vaultRun(t, env, nil, nil, "id", "--config", filepath.Join(dirA, "alknet.toml"), "--vault-passphrase-file", passA)
	if err != nil {
		t.Fatalf("id A: %v\n%s", err, e)
	}
	idB, e, err := vaultRun(t, env, nil, []*os.File{passFD(t, "pass-b")}, "id", "--config", filepath.Join(dirB, "alknet.toml"), "--vault-passphrase-fd", "3")
	if err != nil {
		t.Fatalf("id B: %v\n%s", err, e)
	}
	idA, idB = strings.TrimSpace(idA), strings.TrimSpace(idB)
	if idA != idB || idA != idFromInit || len(idA) != 52 {
		t.Fatalf("node IDs: A %q, B %q, init %q", idA, idB, idFromInit)
	}

	// A wrong passphrase is a clear error and changes nothing; no passphrase source and
	// no terminal is a clear error too.
	before, _ := os.ReadFile(filepath.Join(dirB, "vault.age"))
	if _, e, err := vaultRun(t, env, nil, nil, "id", "--config", filepath.Join(dirB, "alknet.toml"), "--vault-passphrase-file", passA); err == nil || !strings.Contains(e, "wrong passphrase") {
		t.Fatalf("id with the wrong passphrase: %v\n%s", err, e)
	}
	if after, _ := os.ReadFile(filepath.Join(dirB, "vault.age")); !bytes.Equal(before, after) {
		t.Fatal("a wrong passphrase changed the vault file")
	}
	if _, e, err := vaultRun(t, env, nil, nil, "id", "--config", filepath.Join(dirB, "alknet.toml")); err == nil || !strings.Contains(e, "--vault-passphrase-file") {
		t.Fatalf("id with no passphrase source: %v\n%s", err, e)
	}

	// The SSH host key from each vault.
	hostA, e, err := vaultRun(t, env, nil, nil, "vault", "pubkey", "--config", filepath.Join(dirA, "alknet.toml"), "--passphrase-file", passA, "--key", "ssh-host", "--format", "openssh")
	if err != nil {
		t.Fatalf("pubkey A: %v\n%s", err, e)
	}
	hostB, e, err := vaultRun(t, env, nil, nil, "vault", "pubkey", "--vault", filepath.Join(dirB, "vault.age"), "--passphrase-file", passB, "--key", "ssh-host", "--format", "openssh")
	if err != nil {
		t.Fatalf("pubkey B: %v\n%s", err, e)
	}
	if hostA != hostB || !strings.HasPrefix(hostA, "ssh-ed25519 AAAA") {
		t.Fatalf("SSH host keys differ:\n%s%s", hostA, hostB)
	}

	// Both servers, unlocked at start, present the same identity, and their SSH
	// listeners the same host key.
	portA, sshA := setSSHListen(t, filepath.Join(dirA, "alknet.toml"))
	portB, _ := setSSHListen(t, filepath.Join(dirB, "alknet.toml"))
	nA := startVaultServe(t, env, dirA, nil, "--vault-passphrase-file", passA)
	nB := startVaultServe(t, env, dirB, []*os.File{passFD(t, "pass-b")}, "--vault-passphrase-fd", "3")
	sidA, _, _ := strings.Cut(nA.Addr, "@")
	sidB, _, _ := strings.Cut(nB.Addr, "@")
	if sidA != idA || sidB != idA {
		t.Fatalf("serve node IDs %s, %s; want %s", sidA, sidB, idA)
	}
	// A client pinning A's node ID reaches B: B proves A's key in the TLS handshake.
	if out, err := nB.Run(t, "ping", idA+"@"+nB.HostPort, "--identity", nB.ClientKey); err != nil {
		t.Fatalf("ping B pinned to A's node ID: %v\n%s", err, out)
	}
	if !sshA {
		t.Log("ssh module not wired in: skipping the ssh-keyscan check")
		return
	}
	if _, err := exec.LookPath("ssh-keyscan"); err != nil {
		t.Skip("ssh-keyscan not installed (apt-get install openssh-client)")
	}
	for _, d := range []string{dirA, dirB} {
		if _, err := os.Stat(filepath.Join(d, "ssh_host_ed25519_key")); err == nil {
			t.Fatalf("%s: the SSH host key came from a file, not the vault", d)
		}
	}
	want := strings.Fields(hostA)[1]
	for _, port := range []string{portA, portB} {
		out, err := exec.Command("ssh-keyscan", "-T", "10", "-t", "ed25519", "-p", port, "127.0.0.1").Output()
		if err != nil {
			t.Fatalf("ssh-keyscan port %s: %v", port, err)
		}
		f := strings.Fields(string(out))
		if len(f) < 3 || f[1] != "ssh-ed25519" || f[2] != want {
			t.Fatalf("ssh-keyscan port %s: %q, want the vault's %s", port, out, want)
		}
	}
}

// TestVaultServePromptsOnTerminal: with no passphrase flag, serve and id ask on the
// terminal.
func TestVaultServePromptsOnTerminal(t *testing.T) {
	env := vaultEnv(t)
	pass := writePass(t, t.TempDir(), "tty-pass")
	dir := filepath.Join(t.TempDir(), "n")
	if out, e, err := vaultRun(t, env, nil, nil, "init", "--dir", dir, "--listen", "127.0.0.1:0", "--vault", "--vault-words", "12", "--vault-passphrase-file", pass, "--vault-work-factor", "12"); err != nil {
		t.Fatalf("init: %v\n%s%s", err, out, e)
	}
	want, e, err := vaultRun(t, env, nil, nil, "id", "--config", filepath.Join(dir, "alknet.toml"), "--vault-passphrase-file", pass)
	if err != nil {
		t.Fatalf("id: %v\n%s", err, e)
	}
	cmd := exec.Command(alknetBinary(t), "id", "--config", filepath.Join(dir, "alknet.toml"))
	cmd.Env = env
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer tty.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		wrote := false
		for {
			n, err := tty.Read(buf)
			out.Write(buf[:n])
			if !wrote && strings.Contains(out.String(), "Passphrase for") {
				// Type only once the program has turned echo off.
				for i := 0; i < 500; i++ {
					tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
					if err != nil || tio.Lflag&unix.ECHO == 0 {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				tty.Write([]byte("tty-pass\r"))
				wrote = true
			}
			if err != nil {
				return
			}
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("id on a terminal: %v\n%s", err, out.String())
	}
	<-done
	if !strings.Contains(out.String(), strings.TrimSpace(want)) {
		t.Fatalf("id on a terminal printed %q, want %s", out.String(), want)
	}
	if strings.Contains(out.String(), "tty-pass") {
		t.Fatal("the passphrase was echoed")
	}
}

// TestVaultCLIVectors checks the published vectors through the binary: SLIP-0010 ed25519
// vectors 1 and 2 with "vault derive --seed-hex --json", and Trezor's BIP39 vectors with
// "vault mnemonic-to-seed --passphrase TREZOR".
func TestVaultCLIVectors(t *testing.T) {
	env := vaultEnv(t)
	raw, err := os.ReadFile("../../vault/testdata/slip10_ed25519_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var slip struct {
		Vectors []struct {
			Seed   string `json:"seed"`
			Chains []struct {
				Path      string `json:"path"`
				ChainCode string `json:"chain_code"`
				Private   string `json:"private"`
				Public    string `json:"public"`
			} `json:"chains"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &slip); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, v := range slip.Vectors {
		for _, c := range v.Chains {
			out, e, err := vaultRun(t, env, nil, nil, "vault", "derive", "--path", c.Path, "--seed-hex", v.Seed, "--json")
			if err != nil {
				t.Fatalf("derive %s: %v\n%s", c.Path, err, e)
			}
			var got deriveOutput
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("derive %s: %v\n%s", c.Path, err, out)
			}
			if got.Path != c.Path || got.PrivateKey != c.Private || got.ChainCode != c.ChainCode || got.PublicKey != c.Public || "00"+got.Ed25519PublicKey != c.Public {
				t.Fatalf("derive %s:\n got %+v\nwant %+v", c.Path, got, c)
			}
			steps++
		}
	}
	if steps != 12 {
		t.Fatalf("%d SLIP-0010 steps", steps)
	}
	// h works like ', and bad paths and unhardened indices are refused.
	seed := slip.Vectors[0].Seed
	if out, _, err := vaultRun(t, env, nil, nil, "vault", "derive", "--path", "m/0h/1H", "--seed-hex", seed, "--json"); err != nil || !strings.Contains(out, slip.Vectors[0].Chains[2].Private) {
		t.Fatalf("m/0h/1H: %v %s", err, out)
	}
	for _, bad := range []string{"m/0'/1", "0'", "m/x'", "m/2147483648'"} {
		if _, e, err := vaultRun(t, env, nil, nil, "vault", "derive", "--path", bad, "--seed-hex", seed); err == nil || !strings.Contains(e, "invalid derivation path") {
			t.Fatalf("path %q: %v %s", bad, err, e)
		}
	}

	raw, err = os.ReadFile("../../vault/testdata/bip39_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var bip map[string][][]string
	if err := json.Unmarshal(raw, &bip); err != nil {
		t.Fatal(err)
	}
	for _, v := range bip["english"] {
		out, e, err := vaultRun(t, env, []byte(v[1]+"\n"), nil, "vault", "mnemonic-to-seed", "--passphrase", "TREZOR")
		if err != nil || strings.TrimSpace(out) != v[2] {
			t.Fatalf("mnemonic-to-seed %q: %v\n got %s\nwant %s\n%s", v[1], err, out, v[2], e)
		}
	}
	// Empty passphrase, and a bad checksum.
	out, _, err := vaultRun(t, env, []byte("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"), nil, "vault", "mnemonic-to-seed")
	if err != nil || !strings.HasPrefix(out, "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1") {
		t.Fatalf("no passphrase: %v %s", err, out)
	}
	if _, e, err := vaultRun(t, env, []byte("zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo"), nil, "vault", "mnemonic-to-seed"); err == nil || !strings.Contains(e, "checksum") {
		t.Fatalf("bad checksum: %v %s", err, e)
	}
}

// TestVaultCLIBlobs: init, encrypt, rotate, decrypt through the binary; tampered blobs
// and a wrong passphrase fail cleanly; restore refuses to overwrite.
func TestVaultCLIBlobs(t *testing.T) {
	env := vaultEnv(t)
	dir := t.TempDir()
	pass := writePass(t, dir, "blob-pass")
	wrong := writePass(t, dir, "not-it")
	file := filepath.Join(dir, "v.age")
	mn, e, err := vaultRun(t, env, nil, nil, "vault", "init", "--vault", file, "--passphrase-file", pass, "--words", "12", "--work-factor", "12")
	if err != nil || len(strings.Fields(mn)) != 12 || !strings.Contains(e, "shown only once") {
		t.Fatalf("vault init: %v\n%s%s", err, mn, e)
	}
	if _, e, err := vaultRun(t, env, nil, nil, "vault", "init", "--vault", file, "--passphrase-file", pass); err == nil || !strings.Contains(e, "already exists") {
		t.Fatalf("second init: %v %s", err, e)
	}
	v := func(stdin []byte, args ...string) (string, string, error) {
		return vaultRun(t, env, stdin, nil, append([]string{"vault", "--vault", file, "--passphrase-file", pass}, args...)...)
	}
	plain := []byte("token: s3cr3t\x00\xffbinary\n")
	b2, e, err := v(plain, "encrypt")
	if err != nil {
		t.Fatalf("encrypt: %v %s", err, e)
	}
	var blob map[string]any
	if err := json.Unmarshal([]byte(b2), &blob); err != nil || blob["key_version"] != float64(2) || len(blob) != 4 {
		t.Fatalf("blob %s: %v", b2, err)
	}
	b3, e, err := v([]byte(b2), "rotate", "--to", "3")
	if err != nil || !strings.Contains(b3, `"key_version":3`) {
		t.Fatalf("rotate: %v %s %s", err, b3, e)
	}
	for _, b := range []string{b2, b3} {
		got, e, err := v([]byte(b), "decrypt")
		if err != nil || got != string(plain) {
			t.Fatalf("decrypt: %v %q %s", err, got, e)
		}
	}
	// Tampered: one bit of data, of iv, and the version.
	var parsed struct {
		V    int    `json:"key_version"`
		Salt string `json:"salt"`
		IV   string `json:"iv"`
		Data string `json:"data"`
	}
	json.Unmarshal([]byte(b3), &parsed)
	flip := func(s string) string {
		r := []byte(s)
		if r[0] == 'A' {
			r[0] = 'B'
		} else {
			r[0] = 'A'
		}
		return string(r)
	}
	for _, tb := range []string{
		fmt.Sprintf(`{"key_version":3,"salt":%q,"iv":%q,"data":%q}`, parsed.Salt, parsed.IV, flip(parsed.Data)),
		fmt.Sprintf(`{"key_version":3,"salt":%q,"iv":%q,"data":%q}`, parsed.Salt, flip(parsed.IV), parsed.Data),
		fmt.Sprintf(`{"key_version":2,"salt":%q,"iv":%q,"data":%q}`, parsed.Salt, parsed.IV, parsed.Data),
	} {
		out, e, err := v([]byte(tb), "decrypt")
		if err == nil || out != "" || !strings.Contains(e, "decryption failed") {
			t.Fatalf("tampered blob decrypted: %v %q %s", err, out, e)
		}
	}
	if _, e, err := v([]byte(`{"key_version":1}`), "decrypt"); err == nil || !strings.Contains(e, "invalid encrypted blob") {
		t.Fatalf("bad blob: %v %s", err, e)
	}
	if _, e, err := v(plain, "encrypt", "--key-version", "1"); err == nil || !strings.Contains(e, "versions start at 2") {
		t.Fatalf("encrypt v1: %v %s", err, e)
	}
	// Wrong passphrase: clear error, file unchanged.
	before, _ := os.ReadFile(file)
	if _, e, err := vaultRun(t, env, []byte(b2), nil, "vault", "decrypt", "--vault", file, "--passphrase-file", wrong); err == nil || !strings.Contains(e, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v %s", err, e)
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Fatal("wrong passphrase changed the file")
	}
	// Restore the same mnemonic elsewhere: the blobs decrypt there too.
	file2 := filepath.Join(dir, "restored.age")
	if out, e, err := vaultRun(t, env, []byte(mn), nil, "vault", "restore", "--vault", file2, "--passphrase-file", wrong, "--work-factor", "12"); err != nil || !strings.Contains(out, "node ID:") {
		t.Fatalf("restore: %v %s %s", err, out, e)
	}
	if got, e, err := vaultRun(t, env, []byte(b3), nil, "vault", "decrypt", "--vault", file2, "--passphrase-file", wrong); err != nil || got != string(plain) {
		t.Fatalf("decrypt in the restored vault: %v %s", err, e)
	}
	if _, e, err := vaultRun(t, env, []byte(mn), nil, "vault", "restore", "--vault", file2, "--passphrase-file", wrong); err == nil || !strings.Contains(e, "already exists") {
		t.Fatalf("restore over a file: %v %s", err, e)
	}
	if _, e, err := vaultRun(t, env, []byte("abandon abandon"), nil, "vault", "restore", "--vault", filepath.Join(dir, "x.age"), "--passphrase-file", wrong); err == nil || !strings.Contains(e, "invalid mnemonic") {
		t.Fatalf("restore a bad mnemonic: %v %s", err, e)
	}
	// derive and pubkey from the vault agree.
	d, e, err := v(nil, "derive", "--path", "m/74'/0'/0'/3'", "--json")
	if err != nil {
		t.Fatalf("derive: %v %s", err, e)
	}
	pk, e, err := v(nil, "pubkey", "--key", "device:3")
	if err != nil || !strings.Contains(d, `"ed25519_public_key":"`+strings.TrimSpace(pk)+`"`) {
		t.Fatalf("pubkey device:3 %q vs derive %s: %v %s", pk, d, err, e)
	}
	if _, err := hex.DecodeString(strings.TrimSpace(pk)); err != nil {
		t.Fatal(err)
	}
}
