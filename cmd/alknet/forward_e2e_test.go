package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// Forwarding end-to-end tests: stock OpenSSH (-L, -W, -R, -D) through "alknet connect"
// as ProxyCommand, and curl, against "alknet serve" with [ssh.forward] rules.

// fwdHTTP is a local HTTP server answering "/" with a random body.
type fwdHTTP struct {
	port string
	body []byte
}

func startFwdHTTP(t *testing.T, size int) *fwdHTTP {
	t.Helper()
	body := make([]byte, size)
	rand.Read(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return &fwdHTTP{port: port, body: body}
}

// fwdNode is a node for the forwarding tests: the owner key ("*") and a peer "nofwd"
// that holds ssh:exec only, for which a rule allows every target.
type fwdNode struct {
	*testNode
	noFwdKey  string
	transport string // for the ProxyCommand; "" is QUIC with TCP fallback
}

func startFwdNode(t *testing.T, rules string) *fwdNode {
	t.Helper()
	for _, tool := range []string{"ssh", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install openssh-client curl)", tool)
		}
	}
	k := core.GenerateKey()
	keyFile := filepath.Join(t.TempDir(), "nofwd.key")
	if err := core.WriteKeyFile(keyFile, k, "nofwd"); err != nil {
		t.Fatal(err)
	}
	extra := rules + fmt.Sprintf(`
[[ssh.forward.rules]]
action = "allow"
target = "*"
peers = ["nofwd"]

[[peers]]
name = "nofwd"
keys = [%q]
scopes = ["ssh:exec"]
`, core.NodeIDOf(k.Public().(ed25519.PublicKey)))
	return &fwdNode{testNode: startNode(t, extra), noFwdKey: keyFile}
}

func fwdAllowRule(target string) string {
	return fmt.Sprintf("\n[[ssh.forward.rules]]\naction = \"allow\"\ntarget = %q\n", target)
}

// fwdSSHArgs are OpenSSH client options reaching n with key (both in TLS and in SSH).
func (n *fwdNode) sshArgs(key string, extra ...string) []string {
	args := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no",
		"-o", "LogLevel=INFO", "-o", "ConnectTimeout=20", "-o", "ExitOnForwardFailure=yes",
		"-i", key, "-o", "ProxyCommand=" + n.ProxyCommand("alknet/ssh", key, n.transport)}
	return append(append(args, extra...), "alknet")
}

// runSSH runs ssh to completion and returns stdout, stderr and the exit code.
func (n *fwdNode) runSSH(t *testing.T, key string, stdin []byte, extra ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("ssh", n.sshArgs(key, extra...)...)
	cmd.Env = n.Env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("ssh %v did not finish\n%s", extra, errb.String())
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// fwdProc is a long-running client (ssh -N, alknet socks) stopped when the test ends.
type fwdProc struct {
	cmd    *exec.Cmd
	stderr *coretest.SyncBuffer
	done   chan struct{}
}

func fwdStartBG(t testing.TB, env []string, name string, args ...string) *fwdProc {
	t.Helper()
	p := &fwdProc{cmd: exec.Command(name, args...), stderr: &coretest.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

func (p *fwdProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// fwdWaitListening waits until something accepts connections on addr.
func fwdWaitListening(t testing.TB, addr string, p *fwdProc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited: %s", p.cmd.Path, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %s", addr, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fwdCurl runs curl with args and returns the body and exit code.
func fwdCurl(t *testing.T, args ...string) ([]byte, string, int) {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "30"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return out.Bytes(), errb.String(), cmd.ProcessState.ExitCode()
}

func fwdSameBody(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)", what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// fwdNoTargetsLogged fails if the server's log names a forwarded target port.
func fwdNoTargetsLogged(t *testing.T, n *fwdNode, ports ...string) {
	t.Helper()
	log := n.Output()
	for _, p := range ports {
		if strings.Contains(log, p) {
			t.Errorf("server log names target port %s:\n%s", p, log)
		}
	}
}

func TestForwardLocalOpenSSH(t *testing.T) {
	allowed := startFwdHTTP(t, 1<<20)
	denied := startFwdHTTP(t, 1000)
	n := startFwdNode(t, fwdAllowRule("127.0.0.1:"+allowed.port)+fwdAllowRule("alknet-ping"))

	// ssh -N -L to an allowed HTTP server, then curl through it.
	lp := fwdFreePort(t)
	p := fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.ClientKey, "-N", "-L", lp+":127.0.0.1:"+allowed.port)...)
	fwdWaitListening(t, "127.0.0.1:"+lp, p)
	for i := range 3 {
		body, errs, code := fwdCurl(t, "http://127.0.0.1:"+lp+"/")
		if code != 0 {
			t.Fatalf("curl through -L (%d): exit %d: %s\nssh: %s", i, code, errs, p.stderr.String())
		}
		fwdSameBody(t, "curl through ssh -L", body, allowed.body)
	}

	// The same against a port no rule allows: prohibited.
	lp2 := fwdFreePort(t)
	p2 := fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.ClientKey, "-N", "-L", lp2+":127.0.0.1:"+denied.port)...)
	fwdWaitListening(t, "127.0.0.1:"+lp2, p2)
	if body, _, code := fwdCurl(t, "http://127.0.0.1:"+lp2+"/"); code == 0 || len(body) != 0 {
		t.Fatalf("curl to a denied port: exit %d, %d bytes", code, len(body))
	}
	fwdWaitText(t, p2.stderr, "administratively prohibited")

	// The first forward still works after the refusal on another connection.
	body, _, code := fwdCurl(t, "http://127.0.0.1:"+lp+"/")
	if code != 0 {
		t.Fatalf("curl after a refusal: exit %d", code)
	}
	fwdSameBody(t, "curl after refusal", body, allowed.body)

	// ssh -W host:port for an allowed target.
	out, errs, code := n.runSSH(t, n.ClientKey, []byte("GET / HTTP/1.0\r\n\r\n"), "-W", "127.0.0.1:"+allowed.port)
	if code != 0 || !strings.HasPrefix(out, "HTTP/1.0 200 OK") || !strings.HasSuffix(out, string(allowed.body)) {
		t.Fatalf("ssh -W: exit %d, %d bytes: %s", code, len(out), errs)
	}
	_, errs, code = n.runSSH(t, n.ClientKey, []byte{}, "-W", "127.0.0.1:"+denied.port)
	if code == 0 || !strings.Contains(errs, "administratively prohibited") {
		t.Fatalf("ssh -W to a denied port: exit %d: %s", code, errs)
	}

	// An alknet-<name> target reaches the node's own service: alknet/ping echoes. The
	// port is ignored (OpenSSH refuses 0 in -W, so any other will do).
	out, errs, code = n.runSSH(t, n.ClientKey, []byte("hello over ssh"), "-W", "alknet-ping:1")
	if code != 0 || out != "hello over ssh" {
		t.Fatalf("ssh -W alknet-ping:1: exit %d, %q: %s", code, out, errs)
	}

	// A reload applies to the next channel open.
	f, err := os.OpenFile(n.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(fwdAllowRule("127.0.0.1:" + denied.port))
	f.Close()
	n.Reload(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, _, code := fwdCurl(t, "http://127.0.0.1:"+lp2+"/")
		if code == 0 {
			fwdSameBody(t, "curl after reload", body, denied.body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reloaded rule did not apply: exit %d\n%s", code, n.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	fwdNoTargetsLogged(t, n, allowed.port, denied.port)
}

func TestForwardNoScopeOpenSSH(t *testing.T) {
	web := startFwdHTTP(t, 1000)
	n := startFwdNode(t, fwdAllowRule("*"))
	// A rule allows everything for this peer, but it holds no forwarding scope.
	_, errs, code := n.runSSH(t, n.noFwdKey, []byte{}, "-W", "127.0.0.1:"+web.port)
	if code == 0 || !strings.Contains(errs, "administratively prohibited") {
		t.Fatalf("ssh -W without scope: exit %d: %s", code, errs)
	}
	_, errs, code = n.runSSH(t, n.noFwdKey, nil, "-N", "-R", "0:127.0.0.1:"+web.port)
	if code == 0 || !strings.Contains(errs, "remote port forwarding failed") {
		t.Fatalf("ssh -R without scope: exit %d: %s", code, errs)
	}
	lp := fwdFreePort(t)
	p := fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.noFwdKey, "-N", "-D", lp)...)
	fwdWaitListening(t, "127.0.0.1:"+lp, p)
	if _, _, code := fwdCurl(t, "--socks5-hostname", "127.0.0.1:"+lp, "http://localhost:"+web.port+"/"); code == 0 {
		t.Fatal("ssh -D without scope: curl succeeded")
	}
	sp := fwdFreePort(t)
	s := fwdStartBG(t, n.Env, n.Bin, "socks", n.Addr, "--listen", "127.0.0.1:"+sp, "--identity", n.noFwdKey)
	fwdWaitListening(t, "127.0.0.1:"+sp, s)
	if _, _, code := fwdCurl(t, "--socks5", "127.0.0.1:"+sp, "http://127.0.0.1:"+web.port+"/"); code == 0 {
		t.Fatal("alknet socks without scope: curl succeeded")
	}
}

var fwdAllocatedRe = regexp.MustCompile(`Allocated port (\d+) for remote forward`)

func TestForwardRemoteOpenSSH(t *testing.T) {
	web := startFwdHTTP(t, 1<<20)
	n := startFwdNode(t, "")
	// Over TLS/TCP the node sees the end of the session as soon as the client exits;
	// over QUIC, a killed ProxyCommand is noticed only at the idle timeout.
	n.transport = "tcp"
	p := fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.ClientKey, "-N", "-R", "0:127.0.0.1:"+web.port)...)
	m := fwdWaitMatch(t, p.stderr, fwdAllocatedRe)
	port := m[1]
	if pn, _ := strconv.Atoi(port); pn == 0 {
		t.Fatalf("allocated port %s", port)
	}
	body, errs, code := fwdCurl(t, "http://127.0.0.1:"+port+"/")
	if code != 0 {
		t.Fatalf("curl on the remote forward: exit %d: %s\n%s", code, errs, p.stderr.String())
	}
	fwdSameBody(t, "curl through ssh -R", body, web.body)
	// The listener closes with the session.
	p.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("remote forward listener outlived its session")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fwdNoTargetsLogged(t, n, web.port)
}

func TestForwardDynamicOpenSSH(t *testing.T) {
	allowed := startFwdHTTP(t, 1<<20)
	denied := startFwdHTTP(t, 1000)
	n := startFwdNode(t, fwdAllowRule("127.0.0.1:"+allowed.port))
	lp := fwdFreePort(t)
	p := fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.ClientKey, "-N", "-D", lp)...)
	fwdWaitListening(t, "127.0.0.1:"+lp, p)
	// "localhost" travels as a name and resolves on the node, to 127.0.0.1 (allowed).
	body, errs, code := fwdCurl(t, "--socks5-hostname", "127.0.0.1:"+lp, "http://localhost:"+allowed.port+"/")
	if code != 0 {
		t.Fatalf("curl --socks5-hostname through ssh -D: exit %d: %s", code, errs)
	}
	fwdSameBody(t, "ssh -D", body, allowed.body)
	if _, _, code := fwdCurl(t, "--socks5-hostname", "127.0.0.1:"+lp, "http://localhost:"+denied.port+"/"); code == 0 {
		t.Fatal("ssh -D to a denied port succeeded")
	}
	fwdNoTargetsLogged(t, n, allowed.port, denied.port)
}

func fwdFreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func fwdWaitText(t *testing.T, b *coretest.SyncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in: %s", s, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fwdWaitMatch(t *testing.T, b *coretest.SyncBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no match for %s in: %s", re, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestForwardStreamlocalOpenSSH(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("served on a unix socket")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	web := startFwdHTTP(t, 1<<16)
	n := startFwdNode(t, fwdAllowRule(dir+"/*.sock"))

	// Off by default, whatever the rules say.
	lp := fwdFreePort(t)
	p := fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.ClientKey, "-N", "-L", lp+":"+sock)...)
	fwdWaitListening(t, "127.0.0.1:"+lp, p)
	if _, _, code := fwdCurl(t, "http://127.0.0.1:"+lp+"/"); code == 0 {
		t.Fatal("streamlocal forward worked while off")
	}
	fwdWaitText(t, p.stderr, "administratively prohibited")
	p.stop()

	// Turn it on and reload.
	cfg, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	on := strings.Replace(string(cfg), "\nstreamlocal = false\n", "\nstreamlocal = true\n", 1)
	if on == string(cfg) {
		t.Fatal("no streamlocal key in the generated config")
	}
	if err := os.WriteFile(n.Config, []byte(on), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Reload(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		lp := fwdFreePort(t)
		p := fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.ClientKey, "-N", "-L", lp+":"+sock)...)
		fwdWaitListening(t, "127.0.0.1:"+lp, p)
		got, _, code := fwdCurl(t, "http://127.0.0.1:"+lp+"/")
		p.stop()
		if code == 0 {
			fwdSameBody(t, "ssh -L to a unix socket", got, body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streamlocal did not turn on: exit %d\n%s", code, n.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A path outside the rules stays refused.
	lp = fwdFreePort(t)
	p = fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.ClientKey, "-N", "-L", lp+":/run/elsewhere.sock")...)
	fwdWaitListening(t, "127.0.0.1:"+lp, p)
	if _, _, code := fwdCurl(t, "http://127.0.0.1:"+lp+"/"); code == 0 {
		t.Fatal("streamlocal forward outside the rules worked")
	}
	fwdWaitText(t, p.stderr, "administratively prohibited")

	// ssh -R with a socket path on the node's side.
	rsock := filepath.Join(dir, "remote.sock")
	p = fwdStartBG(t, n.Env, "ssh", n.sshArgs(n.ClientKey, "-N", "-R", rsock+":127.0.0.1:"+web.port)...)
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(rsock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no remote socket: %s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, errs, code := fwdCurl(t, "--unix-socket", rsock, "http://alknet/")
	if code != 0 {
		t.Fatalf("curl on the remote unix forward: exit %d: %s", code, errs)
	}
	fwdSameBody(t, "ssh -R from a unix socket", got, web.body)
}
