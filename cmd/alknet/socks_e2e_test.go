package main

import (
	"strings"
	"testing"
)

// "alknet socks" end to end: curl through the local SOCKS5 proxy, over one SSH
// connection to a real node whose [ssh.forward] rules allow one port.

func TestSOCKSCommand(t *testing.T) {
	allowed := startFwdHTTP(t, 1<<20)
	denied := startFwdHTTP(t, 1000)
	n := startFwdNode(t, allowRule("127.0.0.1:"+allowed.port))
	for _, transport := range []string{"quic", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			lp := freeTCPPort(t)
			p := startBG(t, n.Env, n.Bin, "socks", n.Addr, "--listen", "127.0.0.1:"+lp, "--identity", n.ClientKey, "--transport", transport)
			waitListening(t, "127.0.0.1:"+lp, p)
			proxy := "127.0.0.1:" + lp
			for _, tc := range []struct{ flag, url string }{
				{"--socks5", "http://127.0.0.1:" + allowed.port + "/"},
				{"--socks5-hostname", "http://localhost:" + allowed.port + "/"},
				{"--socks5-hostname", "http://127.0.0.1:" + allowed.port + "/"},
			} {
				body, errs, code := curl(t, tc.flag, proxy, tc.url)
				if code != 0 {
					t.Fatalf("curl %s %s: exit %d: %s\n%s", tc.flag, tc.url, code, errs, p.stderr.String())
				}
				sameBody(t, "alknet socks", body, allowed.body)
			}
			for _, tc := range []struct{ flag, url string }{
				{"--socks5", "http://127.0.0.1:" + denied.port + "/"},
				{"--socks5-hostname", "http://localhost:" + denied.port + "/"},
			} {
				_, errs, code := curl(t, tc.flag, proxy, tc.url)
				if code == 0 {
					t.Fatalf("curl %s %s through alknet socks succeeded", tc.flag, tc.url)
				}
				if !strings.Contains(errs, "not allowed") && !strings.Contains(errs, "(2)") {
					t.Errorf("curl %s: want the ruleset refusal, got: %s", tc.url, errs)
				}
			}
		})
	}
	noTargetsLogged(t, n, allowed.port, denied.port)
}
