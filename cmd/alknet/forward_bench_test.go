package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/ssh/socks5"
)

// Forwarding benchmarks: the same OpenSSH client through alknet (ProxyCommand over QUIC
// and TLS/TCP, and the plain TCP listener) and through OpenSSH's sshd on loopback
// (benchTargets and startSSHD in ssh_bench_test.go), and "alknet socks" against
// "ssh -D" on sshd.
//
//	cd cmd && go test -run '^$' -bench 'Forward|SOCKS' -benchtime 3x ./alknet
//
// ALKNET_SSH_BENCH_MB sets the download size (default 1024 MiB; these use a quarter).

// fwdSource is a TCP server that sends size zero bytes on every connection, then
// closes it.
func fwdSource(tb testing.TB, size int64) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	var wg sync.WaitGroup
	tb.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				for left := size; left > 0; {
					k, err := c.Write(buf[:min(left, int64(len(buf)))])
					if err != nil {
						return
					}
					left -= int64(k)
				}
			})
		}
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// fwdAllowAll lets the bench node forward to loopback: the rule is appended to the
// config and applied with a reload.
func fwdAllowAll(tb testing.TB, n *sshNode, probe []string, srcPort string) {
	tb.Helper()
	f, err := os.OpenFile(n.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[ssh.forward.rules]]\naction = \"allow\"\ntarget = \"127.0.0.1\"\n")
	f.Close()
	n.Reload(tb)
	deadline := time.Now().Add(20 * time.Second)
	for {
		lp := freePort(tb)
		p := fwdStartBG(tb, n.Env, "ssh", append(append([]string(nil), probe...), "-N", "-o", "ExitOnForwardFailure=yes", "-L", lp+":127.0.0.1:"+srcPort)...)
		fwdWaitListening(tb, "127.0.0.1:"+lp, p)
		c, err := net.Dial("tcp", "127.0.0.1:"+lp)
		ok := false
		if err == nil {
			b := make([]byte, 1)
			_, err = io.ReadFull(c, b)
			ok = err == nil
			c.Close()
		}
		p.stop()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the forwarding rule never applied:\n%s", n.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fwdDownload reads everything from a connection to addr and returns the time taken.
func fwdDownload(tb testing.TB, dial func() (net.Conn, error), want int64) time.Duration {
	tb.Helper()
	start := time.Now()
	c, err := dial()
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	got, err := io.Copy(io.Discard, c)
	if err != nil || got != want {
		tb.Fatalf("download: %d of %d bytes, %v", got, want, err)
	}
	return time.Since(start)
}

// fwdSOCKSDialer dials target through the SOCKS5 proxy at proxy.
func fwdSOCKSDialer(proxy, host string, port uint16) func() (net.Conn, error) {
	return func() (net.Conn, error) {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			return nil, err
		}
		typ := socks5.AddrIPv4
		if net.ParseIP(host) == nil {
			typ = socks5.AddrDomain
		}
		req, err := socks5.AppendRequest([]byte{5, 1, 0}, socks5.Request{Command: socks5.CmdConnect, AddrType: typ, Host: host, Port: port})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Write(req)
		var sel [2]byte
		if _, err := io.ReadFull(c, sel[:]); err != nil {
			c.Close()
			return nil, err
		}
		code, _, err := socks5.ReadReply(c)
		if err == nil && code != socks5.Succeeded {
			err = fmt.Errorf("socks reply: %v", code)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

func fwdTCPDialer(addr string) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.Dial("tcp", addr) }
}

func fwdReport(b *testing.B, unit string, names []string, value map[string]float64, higherIsBetter bool) {
	for _, name := range names {
		b.ReportMetric(value[name], name+"-"+unit)
		if name != "sshd" && value["sshd"] > 0 {
			r := value[name] / value["sshd"]
			if !higherIsBetter {
				r = value["sshd"] / value[name]
			}
			b.ReportMetric(r, name+"/sshd")
		}
	}
}

// BenchmarkForwardThroughput: a bulk download through "ssh -N -L" from a local TCP
// source, per target.
func BenchmarkForwardThroughput(b *testing.B) {
	n, targets := benchTargets(b)
	size := benchBytes() / 4
	src := fwdSource(b, size)
	fwdAllowAll(b, n, targets[1].args, fwdSource(b, 1))
	var names []string
	dial := map[string]func() (net.Conn, error){}
	for _, tg := range targets {
		lp := freePort(b)
		p := fwdStartBG(b, n.Env, "ssh", append(append([]string(nil), tg.args...), "-N", "-o", "ExitOnForwardFailure=yes", "-L", lp+":127.0.0.1:"+src)...)
		fwdWaitListening(b, "127.0.0.1:"+lp, p)
		names = append(names, tg.name)
		dial[tg.name] = fwdTCPDialer("127.0.0.1:" + lp)
		fwdDownload(b, dial[tg.name], size) // warm up
	}
	fwdMeasure(b, names, dial, size)
}

// fwdMeasure downloads size bytes b.N times through each dialer and reports the
// throughput against sshd's, and the machine's busy CPU per GiB (every process counts:
// ssh, sshd or alknet, the source and this test's client).
func fwdMeasure(b *testing.B, names []string, dial map[string]func() (net.Conn, error), size int64) {
	times := map[string]time.Duration{}
	busy := map[string]time.Duration{}
	measured := true
	b.ResetTimer()
	for range b.N {
		for _, name := range names {
			before, ok := machineBusy()
			times[name] += fwdDownload(b, dial[name], size)
			after, ok2 := machineBusy()
			measured = measured && ok && ok2
			busy[name] += after - before
		}
	}
	b.StopTimer()
	mibps := map[string]float64{}
	for _, name := range names {
		mibps[name] = float64(size) * float64(b.N) / times[name].Seconds() / (1 << 20)
		if measured {
			b.ReportMetric(busy[name].Seconds()/(float64(size)*float64(b.N)/(1<<30)), name+"-cpu-s/GiB")
		}
	}
	fwdReport(b, "MiB/s", names, mibps, true)
}

// BenchmarkSOCKSThroughput: a bulk download through "alknet socks" (QUIC and TLS/TCP)
// and through "ssh -D" on sshd and on alknet, with the same Go SOCKS5 client.
func BenchmarkSOCKSThroughput(b *testing.B) {
	n, targets := benchTargets(b)
	size := benchBytes() / 4
	src := fwdSource(b, size)
	fwdAllowAll(b, n, targets[1].args, fwdSource(b, 1))
	var port uint16
	fmt.Sscan(src, &port)
	var names []string
	dial := map[string]func() (net.Conn, error){}
	for _, tg := range targets {
		if tg.name != "sshd" && tg.name != "quic" {
			continue
		}
		name := tg.name
		if name != "sshd" {
			name = "ssh-D-" + name
		}
		lp := freePort(b)
		p := fwdStartBG(b, n.Env, "ssh", append(append([]string(nil), tg.args...), "-N", "-o", "ExitOnForwardFailure=yes", "-D", lp)...)
		fwdWaitListening(b, "127.0.0.1:"+lp, p)
		names = append(names, name)
		dial[name] = fwdSOCKSDialer("127.0.0.1:"+lp, "127.0.0.1", port)
	}
	for _, tr := range []string{"quic", "tcp"} {
		lp := freePort(b)
		p := fwdStartBG(b, n.Env, n.Bin, "socks", n.Addr, "--listen", "127.0.0.1:"+lp, "--identity", n.ClientKey, "--transport", tr)
		fwdWaitListening(b, "127.0.0.1:"+lp, p)
		name := "socks-" + tr
		names = append(names, name)
		dial[name] = fwdSOCKSDialer("127.0.0.1:"+lp, "127.0.0.1", port)
	}
	for _, name := range names {
		fwdDownload(b, dial[name], size) // warm up, and wait for the SSH connection
	}
	fwdMeasure(b, names, dial, size)
}

// BenchmarkForwardConnsPerSecond: connections opened one after another through one
// "ssh -N -L" forward, each reading a 1-byte answer: channel open, dial, close.
func BenchmarkForwardConnsPerSecond(b *testing.B) {
	n, targets := benchTargets(b)
	src := fwdSource(b, 1)
	fwdAllowAll(b, n, targets[1].args, src)
	const rounds = 200
	var names []string
	dial := map[string]func() (net.Conn, error){}
	for _, tg := range targets {
		lp := freePort(b)
		p := fwdStartBG(b, n.Env, "ssh", append(append([]string(nil), tg.args...), "-N", "-o", "ExitOnForwardFailure=yes", "-L", lp+":127.0.0.1:"+src)...)
		fwdWaitListening(b, "127.0.0.1:"+lp, p)
		names = append(names, tg.name)
		dial[tg.name] = fwdTCPDialer("127.0.0.1:" + lp)
		fwdDownload(b, dial[tg.name], 1)
	}
	times := map[string]time.Duration{}
	b.ResetTimer()
	for range b.N {
		for _, name := range names {
			for range rounds {
				times[name] += fwdDownload(b, dial[name], 1)
			}
		}
	}
	b.StopTimer()
	cps := map[string]float64{}
	for _, name := range names {
		cps[name] = float64(rounds*b.N) / times[name].Seconds()
	}
	fwdReport(b, "conns/s", names, cps, true)
}
