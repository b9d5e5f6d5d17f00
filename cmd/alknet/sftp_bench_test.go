package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
)

// BenchmarkSFTP moves one file (256 MiB; ALKNET_SFTP_BENCH_MIB sets another size) with
// the same OpenSSH sftp client through alknet (SSH over QUIC through "alknet connect",
// the "sftp" subsystem) and through OpenSSH's own sftp-server behind sshd on loopback,
// then with "alknet sftp get/put" on the alknet/sftp ALPN over QUIC; then both again
// over TLS/TCP (metrics ending in -tcp). It reports each throughput in MB/s and each
// ratio against sshd (above 1: faster than OpenSSH).
//
//	cd cmd && go test ./alknet -run '^$' -bench BenchmarkSFTP -benchtime 1x
func BenchmarkSFTP(b *testing.B) {
	size := int64(256)
	if s := os.Getenv("ALKNET_SFTP_BENCH_MIB"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("ALKNET_SFTP_BENCH_MIB=%q: want a positive number", s)
		}
		size = int64(v)
	}
	size <<= 20
	n := startSFTPNode(b, "")
	sshd := startSFTPSSHD(b, n.ClientKey)
	work := b.TempDir()
	src := filepath.Join(work, "src")
	randomFile(b, src, size)
	os.MkdirAll(n.root, 0o700)

	sshdOpts := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + filepath.Join(work, "known_hosts"), "-o", "StrictHostKeyChecking=accept-new",
		"-o", "LogLevel=ERROR", "-o", "IdentityFile=" + n.ClientKey, "-P", sshd.port}
	batch := func(name, script string) string {
		p := filepath.Join(work, name)
		os.WriteFile(p, []byte(script), 0o600)
		return p
	}
	sshdDir := b.TempDir()
	sftpRun := func(opts []string, host, script string) time.Duration {
		args := append(append([]string{}, opts...), "-b", script, host)
		start := time.Now()
		out, errOut, code := runTool(b, n.Env, nil, "sftp", args...)
		d := time.Since(start)
		if code != 0 {
			b.Fatalf("sftp %v: exit %d %s %s", args, code, out, errOut)
		}
		return d
	}
	alknetRun := func(transport string, args ...string) time.Duration {
		full := append([]string{"sftp"}, args[0], n.Addr)
		full = append(full, args[1:]...)
		full = append(full, "--identity", n.ClientKey, "--transport", transport, "--progress", "never")
		start := time.Now()
		out, errOut, code := runTool(b, n.Env, nil, n.Bin, full...)
		d := time.Since(start)
		if code != 0 {
			b.Fatalf("alknet %v: exit %d %s %s", full, code, out, errOut)
		}
		return d
	}
	times := map[string]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		back := filepath.Join(work, "back")
		os.Remove(back)
		times["sshd-put"] += sftpRun(sshdOpts, "127.0.0.1", batch("p1", fmt.Sprintf("put %s %s\n", src, filepath.Join(sshdDir, "f"))))
		times["sshd-get"] += sftpRun(sshdOpts, "127.0.0.1", batch("g1", fmt.Sprintf("get %s %s\n", filepath.Join(sshdDir, "f"), back)))
		cmpFiles(b, src, back)
		os.Remove(back)
		for _, tr := range []string{"quic", "tcp"} {
			sfx := ""
			if tr == "tcp" {
				sfx = "-tcp"
			}
			times["alknet-ssh-put"+sfx] += sftpRun(n.sshOpts("owner", tr), "alknet", batch("p2", fmt.Sprintf("put %s /f\n", src)))
			times["alknet-ssh-get"+sfx] += sftpRun(n.sshOpts("owner", tr), "alknet", batch("g2", fmt.Sprintf("get /f %s\n", back)))
			cmpFiles(b, src, back)
			os.Remove(back)
			times["alknet-sftp-put"+sfx] += alknetRun(tr, "put", src, "/g")
			times["alknet-sftp-get"+sfx] += alknetRun(tr, "get", "/g", back)
			cmpFiles(b, src, back)
			os.Remove(back)
		}
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / 1e6 / d.Seconds() }
	for k, d := range times {
		b.ReportMetric(mbps(d), k+"-MB/s")
	}
	for _, dir := range []string{"put", "get"} {
		base := times["sshd-"+dir].Seconds()
		for _, sfx := range []string{"", "-tcp"} {
			b.ReportMetric(base/times["alknet-ssh-"+dir+sfx].Seconds(), "ssh-"+dir+sfx+"-ratio")
			b.ReportMetric(base/times["alknet-sftp-"+dir+sfx].Seconds(), "alpn-"+dir+sfx+"-ratio")
		}
	}
}

type sftpSSHD struct{ port string }

// startSFTPSSHD runs OpenSSH's sshd on a free loopback port with a temporary host key,
// clientKey authorized, and OpenSSH's sftp-server as the sftp subsystem.
func startSFTPSSHD(tb testing.TB, clientKey string) *sftpSSHD {
	tb.Helper()
	const sshdPath = "/usr/sbin/sshd"
	server := "/usr/lib/openssh/sftp-server"
	for _, p := range []string{sshdPath, server} {
		if _, err := os.Stat(p); err != nil {
			tb.Skipf("%s missing (apt-get install openssh-server openssh-sftp-server): baseline unavailable", p)
		}
	}
	dir := tb.TempDir()
	pub, err := exec.Command("ssh-keygen", "-y", "-f", clientKey).Output()
	if err != nil {
		tb.Fatalf("ssh-keygen -y: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host")).CombinedOutput(); err != nil {
		tb.Fatalf("ssh-keygen: %v %s", err, out)
	}
	if os.Getuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation folder
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	cfg := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %[2]s/host
AuthorizedKeysFile %[2]s/authorized_keys
PidFile %[2]s/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
Subsystem sftp %[3]s
LogLevel ERROR
`, port, dir, server)
	cfgPath := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgPath)
	var errb coretest.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			tb.Fatalf("sshd exited: %s", errb.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("sshd did not start: %s", errb.String())
		}
	}
	return &sftpSSHD{port: port}
}
