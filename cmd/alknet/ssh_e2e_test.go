package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/creack/pty"
)

// The SSH end-to-end tests drive the real OpenSSH client against "alknet serve":
// through "alknet connect" as ProxyCommand over QUIC and over TLS/TCP, and on the
// plain TCP listener.

// sshNode is a running node with SSH settings and extra peers.
type sshNode struct {
	*testNode
	plainPort  string            // port of the plain TCP SSH listener
	keys       map[string]string // peer name -> key file
	knownHosts string
}

// startSSHNode starts a node whose [ssh] section gets settings (key -> TOML value),
// with a plain TCP listener, and extra peers: "runner" (ssh:exec) and "filer" (no ssh
// scope). The owner key holds "*". A key "limits.X" sets X in [limits] instead.
func startSSHNode(t testing.TB, settings map[string]string) *sshNode {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("OpenSSH client not installed (apt-get install openssh-client)")
	}
	port := freePort(t)
	if settings == nil {
		settings = map[string]string{}
	}
	settings["listen"] = strconv.Quote("127.0.0.1:" + port)
	if _, ok := settings["hangup_grace"]; !ok {
		settings["hangup_grace"] = `"1s"`
	}
	keysDir := t.TempDir()
	sn := &sshNode{plainPort: port, keys: map[string]string{}, knownHosts: filepath.Join(keysDir, "known_hosts")}
	var peers strings.Builder
	for _, p := range []struct{ name, scope string }{{"runner", core.ScopeSSHExec}, {"filer", core.ScopeFSRead}, {"stranger", ""}} {
		k := core.GenerateKey()
		path := filepath.Join(keysDir, p.name+".key")
		if err := core.WriteKeyFile(path, k, p.name); err != nil {
			t.Fatal(err)
		}
		sn.keys[p.name] = path
		if p.scope != "" {
			fmt.Fprintf(&peers, "\n[[peers]]\nname = %q\nkeys = [%q]\nscopes = [%q]\n", p.name, core.NodeIDOf(k.Public().(ed25519.PublicKey)), p.scope)
		}
	}
	sn.testNode = startNodeEdited(t, func(cfg string) string {
		head, sec, ok := strings.Cut(cfg, "\n[ssh]\n")
		if !ok {
			t.Fatal("no [ssh] section in the generated config")
		}
		set := func(text, k, v string) string {
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + ` = .*$`)
			loc := re.FindStringIndex(text)
			if loc == nil {
				t.Fatalf("no key %s in the config", k)
			}
			return text[:loc[0]] + k + " = " + v + text[loc[1]:]
		}
		for k, v := range settings {
			if lk, ok := strings.CutPrefix(k, "limits."); ok {
				head = set(head, lk, v)
			} else {
				sec = set(sec, k, v)
			}
		}
		return head + "\n[ssh]\n" + sec + peers.String()
	})
	sn.keys["owner"] = sn.ClientKey
	return sn
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// sshTransports are the three ways the tests reach the server.
var sshTransports = []string{"quic", "tcp", "plain"}

// sshArgs returns OpenSSH client arguments reaching the node over transport with the
// given key files (the first also identifies the ProxyCommand's TLS connection).
func (n *sshNode) sshArgs(transport string, keys []string, opts []string, command ...string) []string {
	args := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + n.knownHosts, "-o", "StrictHostKeyChecking=accept-new",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"}
	for _, k := range keys {
		args = append(args, "-i", k)
	}
	switch transport {
	case "plain":
		args = append(args, "-o", "HostKeyAlias=alknet-test", "-p", n.plainPort)
		args = append(append(args, opts...), "127.0.0.1")
	default:
		args = append(args, "-o", "HostKeyAlias=alknet-test", "-o", "ProxyCommand="+n.ProxyCommand("alknet/ssh", n.ClientKey, transport))
		args = append(append(args, opts...), "alknet")
	}
	return append(args, command...)
}

// ssh runs the ssh client and returns stdout, stderr and the exit code.
func (n *sshNode) ssh(t *testing.T, transport string, keys []string, stdin io.Reader, opts []string, command ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("ssh", n.sshArgs(transport, keys, opts, command...)...)
	cmd.Env = append(n.Env, "LANG=C.UTF-8")
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestSSHExecOpenSSH(t *testing.T) {
	n := startSSHNode(t, nil)
	big := filepath.Join(t.TempDir(), "big")
	bigSum := writeRandomFile(t, big, 100<<20)
	stdin := make([]byte, 8<<20+3)
	rand.Read(stdin)
	stdinSum := sha256.Sum256(stdin)
	owner := []string{n.keys["owner"]}
	agent := startAgent(t)

	for _, tr := range sshTransports {
		t.Run(tr, func(t *testing.T) {
			t.Run("exit status", func(t *testing.T) {
				out, errOut, code := n.ssh(t, tr, owner, nil, nil, "printf hi; exit 3")
				if out != "hi" || code != 3 {
					t.Fatalf("got %q exit %d, want hi exit 3; stderr %s", out, code, errOut)
				}
			})
			t.Run("100 MiB output", func(t *testing.T) {
				cmd := exec.Command("ssh", n.sshArgs(tr, owner, nil, "cat "+big)...)
				cmd.Env = n.Env
				stdout, _ := cmd.StdoutPipe()
				var errb bytes.Buffer
				cmd.Stderr = &errb
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				nb, _ := io.Copy(h, stdout)
				if err := cmd.Wait(); err != nil {
					t.Fatalf("ssh: %v %s", err, errb.String())
				}
				if got := hex.EncodeToString(h.Sum(nil)); got != bigSum || nb != 100<<20 {
					t.Fatalf("got %d bytes sha256 %s, want %d bytes %s", nb, got, 100<<20, bigSum)
				}
			})
			t.Run("stdin", func(t *testing.T) {
				out, errOut, code := n.ssh(t, tr, owner, bytes.NewReader(stdin), nil, "sha256sum")
				want := hex.EncodeToString(stdinSum[:])
				if code != 0 || !strings.HasPrefix(out, want) {
					t.Fatalf("got %q exit %d (%s), want sha256 %s", out, code, errOut, want)
				}
			})
			t.Run("stderr apart", func(t *testing.T) {
				out, errOut, code := n.ssh(t, tr, owner, nil, nil, "echo out; echo err >&2")
				if out != "out\n" || errOut != "err\n" || code != 0 {
					t.Fatalf("got %q %q %d", out, errOut, code)
				}
			})
			t.Run("exec without ssh:exec", func(t *testing.T) {
				out, errOut, code := n.ssh(t, tr, []string{n.keys["filer"]}, nil, nil, "echo should-not-run")
				if code == 0 || strings.Contains(out, "should-not-run") {
					t.Fatalf("got %q exit %d; want refused exec", out, code)
				}
				if !strings.Contains(errOut, "exec request failed") {
					t.Errorf("stderr %q lacks the refused exec", errOut)
				}
			})
			t.Run("unknown key", func(t *testing.T) {
				_, errOut, code := n.ssh(t, tr, []string{n.keys["stranger"]}, nil, nil, "true")
				if code != 255 || !strings.Contains(errOut, "Permission denied") {
					t.Fatalf("got exit %d, stderr %q; want Permission denied", code, errOut)
				}
			})
			t.Run("unknown key then known key", func(t *testing.T) {
				out, errOut, code := n.ssh(t, tr, []string{n.keys["stranger"], n.keys["runner"]}, nil, nil, "echo $ALKNET_PEER")
				if out != "runner\n" || code != 0 {
					t.Fatalf("got %q exit %d (%s), want runner", out, code, errOut)
				}
			})
			t.Run("refused forwardings keep the session", func(t *testing.T) {
				// ssh asks for X11 only with a DISPLAY and for the agent only with a
				// running agent.
				cmd := exec.Command("ssh", n.sshArgs(tr, owner, []string{"-o", "ForwardX11=yes", "-o", "ForwardAgent=yes", "-o", "SendEnv=LANG"}, "echo ok $LANG")...)
				cmd.Env = append(n.Env, "LANG=C.UTF-8", "DISPLAY=127.0.0.1:0", "SSH_AUTH_SOCK="+agent)
				out, err := cmd.Output()
				if string(out) != "ok C.UTF-8\n" || err != nil {
					t.Fatalf("got %q %v", out, err)
				}
			})
		})
	}

	logs := n.Output()
	for _, want := range []string{"msg=auth result=accepted", "peer=runner service=ssh", "msg=auth result=rejected",
		"ssh request refused\" request=x11-req", "ssh request refused\" request=auth-agent-req@openssh.com"} {
		if !strings.Contains(logs, want) {
			t.Errorf("server log lacks %q", want)
		}
	}
}

// startAgent runs an ssh-agent for the test and returns its socket.
func startAgent(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Skipf("ssh-agent: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeRandomFile(t *testing.T, path string, size int) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for written := 0; written < size; written += len(buf) {
		rand.Read(buf)
		f.Write(buf)
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ptyClient runs "ssh -tt" on a local terminal, as a user at a keyboard would.
type ptyClient struct {
	t   *testing.T
	cmd *exec.Cmd
	tty *os.File
	mu  sync.Mutex
	out bytes.Buffer
}

func (n *sshNode) startPtyClient(t *testing.T, tr string, rows, cols uint16) *ptyClient {
	t.Helper()
	args := n.sshArgs(tr, []string{n.keys["owner"]}, []string{"-tt", "-o", "SendEnv=LANG"})
	cmd := exec.Command("ssh", args...)
	cmd.Env = append(n.Env, "LANG=C")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	c := &ptyClient{t: t, cmd: cmd, tty: f}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := f.Read(buf)
			c.mu.Lock()
			c.out.Write(buf[:k])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
	})
	return c
}

func (c *ptyClient) send(s string) { c.tty.WriteString(s) }

func (c *ptyClient) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// expect waits until the output matches re.
func (c *ptyClient) expect(re string) {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for !rx.MatchString(c.output()) {
		if time.Now().After(deadline) {
			c.t.Fatalf("no %q in terminal output:\n%q", re, c.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSSHTerminalOpenSSH(t *testing.T) {
	n := startSSHNode(t, map[string]string{"shell": "true", "login_shell": `"/bin/sh"`})
	for _, tr := range sshTransports {
		t.Run(tr, func(t *testing.T) {
			c := n.startPtyClient(t, tr, 30, 100)
			c.send("stty size; echo TERM-$TERM\r")
			c.expect(`(?s)30 100.*TERM-xterm|30 100.*TERM-`)
			if err := pty.Setsize(c.tty, &pty.Winsize{Rows: 41, Cols: 133}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // ssh forwards SIGWINCH as window-change
			c.send("stty size\r")
			c.expect(`41 133`)

			// Ctrl-C at the terminal stops sleep 100 (the PTY's interrupt character).
			c.send("sleep 100\r")
			time.Sleep(500 * time.Millisecond)
			start := time.Now()
			c.send("\x03")
			time.Sleep(100 * time.Millisecond)
			c.send("echo after-sleep-$?\r")
			c.expect(`after-sleep-130`)
			if time.Since(start) > 10*time.Second {
				t.Fatal("Ctrl-C took too long")
			}
			c.send("exit 5\r")
			if err := c.cmd.Wait(); err == nil || c.cmd.ProcessState.ExitCode() != 5 {
				t.Fatalf("ssh -tt exit: %v, want 5", err)
			}
		})
	}

	t.Run("shell off by default", func(t *testing.T) {
		m := startSSHNode(t, nil)
		owner := []string{m.keys["owner"]}
		if _, errOut, code := m.ssh(t, "quic", owner, nil, []string{"-tt"}, "echo pty"); code == 0 || !strings.Contains(errOut, "PTY allocation request failed") {
			t.Errorf("pty with shell off: exit %d, stderr %q", code, errOut)
		}
		if _, errOut, code := m.ssh(t, "quic", owner, strings.NewReader("echo hi\n"), nil); code == 0 || !strings.Contains(errOut, "shell request failed") {
			t.Errorf("shell with shell off: exit %d, stderr %q", code, errOut)
		}
		if out, _, code := m.ssh(t, "quic", owner, nil, nil, "echo exec-still-works"); code != 0 || out != "exec-still-works\n" {
			t.Errorf("exec: %q %d", out, code)
		}
	})
}

func TestSSHClientKilledOpenSSH(t *testing.T) {
	// A client killed with its terminal takes its ProxyCommand down with it (SIGHUP),
	// so the QUIC connection is never closed: the server learns of it by the idle
	// timeout, shortened here from 60s.
	n := startSSHNode(t, map[string]string{"shell": "true", "limits.idle_timeout": `"4s"`})
	for i, tr := range sshTransports {
		for _, tty := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/tty=%v", tr, tty), func(t *testing.T) {
				// Unusual sleep lengths are the markers: the anchored pattern matches the
				// server's sleep processes, not the ssh client's command line.
				a, b := 3000+i*10+btoi(tty)*5, 3001+i*10+btoi(tty)*5
				marker := fmt.Sprintf("^sleep (%d|%d)$", a, b)
				var opts []string
				if tty {
					opts = []string{"-tt"}
				}
				cmd := exec.Command("ssh", n.sshArgs(tr, []string{n.keys["owner"]}, opts, fmt.Sprintf("sleep %d & trap '' HUP; sleep %d", a, b))...)
				cmd.Env = n.Env
				if tty {
					f, err := pty.Start(cmd)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					go io.Copy(io.Discard, f)
				} else if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				waitPgrep(t, marker, 2)
				cmd.Process.Kill()
				cmd.Wait()
				waitPgrep(t, marker, 0)
			})
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitPgrep waits until exactly want processes match pattern.
func waitPgrep(t *testing.T, pattern string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", pattern).Output()
		got := len(strings.Fields(string(out)))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			full, _ := exec.Command("pgrep", "-af", pattern).Output()
			t.Fatalf("%d processes match %q, want %d:\n%s", got, pattern, want, full)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSSHConfigCommand(t *testing.T) {
	n := startSSHNode(t, nil)
	// The binary is not on PATH here, so the line names it by its absolute path.
	notice := "ssh:     ssh -o ProxyCommand='" + n.Bin + " connect " + n.Addr + " --alpn alknet/ssh --identity "
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(n.Output(), notice) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(n.Output(), notice) {
		t.Fatalf("serve did not print a ready-to-paste ssh line:\n%s", n.Output())
	}
	// Paste it: the printed line, with only batch-mode options added, must log in.
	_, line, _ := strings.Cut(n.Output(), "ssh:     ")
	line, _, _ = strings.Cut(line, "\n")
	pasted := exec.Command("bash", "-c", line+" -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="+filepath.Join(t.TempDir(), "kh")+" 'echo pasted'")
	pasted.Env = n.Env
	if got, err := pasted.CombinedOutput(); err != nil || !strings.Contains(string(got), "pasted\n") {
		t.Fatalf("the printed ssh line did not work: %v\n%s\n%s", err, line, got)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	out, err := n.Run(t, "ssh-config", n.Addr, "--identity", n.keys["runner"], "--name", "box", "--known-hosts", kh)
	if err != nil {
		t.Fatalf("ssh-config: %v\n%s", err, out)
	}
	for _, want := range []string{"Host box\n", "ProxyCommand " + n.Bin + " connect " + n.Addr + " --alpn alknet/ssh", "IdentityFile " + n.keys["runner"], "HostKeyAlias alknet-"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ssh-config output lacks %q:\n%s", want, out)
		}
	}
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	os.WriteFile(cfg, out, 0o600)
	// Host key pinned from the printed line: StrictHostKeyChecking=yes must pass.
	cmd := exec.Command("ssh", "-F", cfg, "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes", "box", "echo via-config $ALKNET_PEER")
	cmd.Env = n.Env
	got, err := cmd.CombinedOutput()
	if err != nil || string(got) != "via-config runner\n" {
		t.Fatalf("ssh with the printed config: %v\n%s", err, got)
	}
}

// TestSSHGracefulShutdownOpenSSH stops the server (SIGTERM) under a running session:
// the client hears why and the command ends with SIGHUP.
func TestSSHGracefulShutdownOpenSSH(t *testing.T) {
	n := startSSHNode(t, nil)
	type result struct {
		out, errOut string
		code        int
	}
	started := make(chan struct{})
	done := make(chan result, 2)
	for _, tr := range []string{"quic", "plain"} {
		go func() {
			cmd := exec.Command("ssh", n.sshArgs(tr, []string{n.keys["owner"]}, nil, "echo started; exec sleep 3333")...)
			cmd.Env = n.Env
			var errb bytes.Buffer
			cmd.Stderr = &errb
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				done <- result{errOut: err.Error(), code: -1}
				return
			}
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			if line == "started\n" {
				started <- struct{}{}
			}
			io.Copy(io.Discard, stdout)
			cmd.Wait()
			done <- result{line, errb.String(), cmd.ProcessState.ExitCode()}
		}()
	}
	for range 2 {
		select {
		case <-started:
		case r := <-done:
			t.Fatalf("session ended early: %+v", r)
		case <-time.After(30 * time.Second):
			t.Fatal("sessions did not start")
		}
	}
	n.Stop(t)
	for range 2 {
		select {
		case r := <-done:
			if !strings.Contains(r.errOut, "shutting down") || r.code == 0 {
				t.Errorf("client saw exit %d, stderr %q; want the shutdown notice", r.code, r.errOut)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the client did not end when the server shut down")
		}
	}
	waitPgrep(t, "^sleep 3333$", 0)
}

// TestSSHHostKeyStableOpenSSH: the host key file is created on first run and kept:
// ssh-keyscan sees the same key after a restart. Password auth is not offered.
func TestSSHHostKeyStableOpenSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh-keyscan"); err != nil {
		t.Skip("ssh-keyscan not installed")
	}
	n := startSSHNode(t, nil)
	scan := func() string {
		t.Helper()
		out, err := exec.Command("ssh-keyscan", "-t", "ed25519", "-p", n.plainPort, "127.0.0.1").Output()
		if err != nil || !strings.Contains(string(out), "ssh-ed25519 ") {
			t.Fatalf("ssh-keyscan: %v %q", err, out)
		}
		return string(out)
	}
	first := scan()
	if _, err := os.Stat(filepath.Join(n.Dir, "ssh_host_ed25519_key")); err != nil {
		t.Fatalf("host key file: %v", err)
	}
	_, errOut, code := n.ssh(t, "plain", []string{n.keys["owner"]}, nil, []string{"-o", "PreferredAuthentications=password,keyboard-interactive"}, "true")
	if code != 255 || !strings.Contains(errOut, "Permission denied (publickey)") {
		t.Errorf("password auth: exit %d, %q", code, errOut)
	}

	n.Stop(t)
	restartNode(t, n.testNode)
	if again := scan(); again != first {
		t.Fatalf("host key changed across a restart:\n%s\n%s", first, again)
	}
}

// restartNode starts "alknet serve" again on n's config and data.
func restartNode(t *testing.T, n *testNode) *testNode {
	t.Helper()
	return startNodeEdited(t, nil, n)
}

// TestSSHPeersAddOpenSSH: "alknet peers add" with an OpenSSH public-key line (an ECDSA
// key made by ssh-keygen) lets that key in on the next connection, no restart.
func TestSSHPeersAddOpenSSH(t *testing.T) {
	n := startSSHNode(t, nil)
	key := filepath.Join(t.TempDir(), "id_ecdsa")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	if _, errOut, code := n.ssh(t, "quic", []string{key}, nil, nil, "true"); code != 255 || !strings.Contains(errOut, "Permission denied") {
		t.Fatalf("unlisted key: exit %d %q", code, errOut)
	}
	pub, _ := os.ReadFile(key + ".pub")
	if out, err := n.Run(t, "peers", "add", "--config", n.Config, "--name", "laptop", "--key", strings.TrimSpace(string(pub)), "--scope", "ssh:exec"); err != nil {
		t.Fatalf("peers add: %v %s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, errOut, code := n.ssh(t, "quic", []string{key}, nil, nil, "echo $ALKNET_PEER")
		if code == 0 && out == "laptop\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("listed key still refused: %d %q %q", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
