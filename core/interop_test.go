package core_test

import (
	"context"
	"crypto/tls"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
	"github.com/quic-go/quic-go"
)

// TestOpenSSLClientALPN drives a third-party TLS client: a registered ALPN is
// negotiated, an unregistered one fails the handshake.
func TestOpenSSLClientALPN(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed (apt-get install openssl)")
	}
	n := coretest.StartNode(t, newEchoMux(t))
	run := func(alpn string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", n.TCPAddr().String(), "-alpn", alpn, "-tls1_3")
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(echoALPN)
	if err != nil || !strings.Contains(out, "ALPN protocol: "+echoALPN) {
		t.Fatalf("registered ALPN: %v\n%s", err, out)
	}
	out, err = run("alknet/nobody")
	if err == nil || !strings.Contains(out, "no application protocol") {
		t.Fatalf("unregistered ALPN was not refused in the handshake: %v\n%s", err, out)
	}
}

// TestRawQUICClientUnregisteredALPN uses quic-go directly, not our dialer.
func TestRawQUICClientUnregisteredALPN(t *testing.T) {
	n := coretest.StartNode(t, newEchoMux(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tlsCfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"alknet/nobody"}}
	c, err := quic.DialAddr(ctx, n.UDPAddr().String(), tlsCfg, nil)
	if err == nil {
		c.CloseWithError(0, "")
		t.Fatal("QUIC handshake on an unregistered ALPN succeeded")
	}
	var te *quic.TransportError
	if !errorsAs(err, &te) || te.ErrorCode != 0x100+120 { // CRYPTO_ERROR(no_application_protocol)
		t.Fatalf("err = %v, want CRYPTO_ERROR 0x178 (no_application_protocol)", err)
	}
	tlsCfg.NextProtos = []string{echoALPN}
	c, err = quic.DialAddr(ctx, n.UDPAddr().String(), tlsCfg, nil)
	if err != nil {
		t.Fatalf("registered ALPN: %v", err)
	}
	c.CloseWithError(0, "")
}

// TestNoALPNRefused: a TLS client that offers no ALPN at all is refused in the
// handshake, like one offering an unregistered ALPN.
func TestNoALPNRefused(t *testing.T) {
	n := coretest.StartNode(t, newEchoMux(t))
	for name, dial := range map[string]func() error{
		"tcp": func() error {
			c, err := tls.Dial("tcp", n.TCPAddr().String(), &tls.Config{InsecureSkipVerify: true})
			if err == nil {
				err = c.Handshake()
				c.Close()
			}
			return err
		},
	} {
		if err := dial(); err == nil {
			t.Errorf("%s: a handshake without ALPN succeeded", name)
		}
	}
}
