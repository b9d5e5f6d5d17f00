package core_test

import (
	"context"
	"crypto/tls"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/quic-go/quic-go"
)

// The benchmarks compare the endpoint and Mux with raw quic-go under the same TLS
// settings (TLS 1.3, an Ed25519 self-signed certificate, X25519MLKEM768), in one run,
// and report the ratio alknet/raw.

const benchALPN = "alknet/bench"

// sink reads each stream to its end, then answers with one byte.
func sinkStream(s io.ReadWriteCloser) {
	defer s.Close()
	io.Copy(io.Discard, s)
	s.Write([]byte{1})
}

type streamCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

func benchHandler(ctx context.Context, c core.Conn) error {
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		go echoOrSink(s)
	}
}

// echoOrSink echoes a first byte of 'e' and ends; otherwise it sinks the stream.
func echoOrSink(s io.ReadWriteCloser) {
	first := make([]byte, 1)
	if _, err := io.ReadFull(s, first); err != nil {
		s.Close()
		return
	}
	if first[0] == 'e' {
		s.Write(first)
		s.Close()
		return
	}
	sinkStream(s)
}

// rawServer is quic-go with the endpoint's TLS settings and nothing else.
type rawServer struct {
	ln         *quic.Listener
	addr       string
	clientCert tls.Certificate
}

func startRaw(b *testing.B) *rawServer {
	cert, err := core.SelfSignedCertificate(core.GenerateKey())
	if err != nil {
		b.Fatal(err)
	}
	tlsCfg := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cert},
		NextProtos:       []string{benchALPN},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519},
		ClientAuth:       tls.RequestClientCert,
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsCfg, &quic.Config{MaxIncomingStreams: 256})
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				for {
					s, err := c.AcceptStream(context.Background())
					if err != nil {
						return
					}
					go echoOrSink(s)
				}
			}()
		}
	}()
	b.Cleanup(func() { ln.Close() })
	clientCert, err := core.SelfSignedCertificate(core.GenerateKey())
	if err != nil {
		b.Fatal(err)
	}
	return &rawServer{ln: ln, addr: ln.Addr().String(), clientCert: clientCert}
}

func (r *rawServer) dial(ctx context.Context) (*quic.Conn, error) {
	tlsCfg := &tls.Config{
		InsecureSkipVerify: true,
		NextProtos:         []string{benchALPN},
		CurvePreferences:   []tls.CurveID{tls.X25519MLKEM768, tls.X25519},
		Certificates:       []tls.Certificate{r.clientCert},
	}
	return quic.DialAddr(ctx, r.addr, tlsCfg, nil)
}

func benchNode(b *testing.B) *coretest.Node {
	m := core.NewMux()
	if err := m.HandleFunc(benchALPN, benchHandler); err != nil {
		b.Fatal(err)
	}
	return coretest.StartNode(b, m, coretest.WithLimits(core.Limits{MaxConnsPerIP: -1}))
}

// send writes size bytes then waits for the server's one-byte answer.
func send(b *testing.B, s streamCloser, buf []byte, size int) {
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	s.CloseWrite()
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	s.Close()
}

type rawStream struct{ *quic.Stream }

func (s rawStream) CloseWrite() error { return s.Stream.Close() }

// BenchmarkStreamThroughput sends 32 MiB per iteration on one stream through the
// endpoint and the Mux, and the same through raw quic-go.
func BenchmarkStreamThroughput(b *testing.B) {
	const size = 32 << 20
	n := benchNode(b)
	raw := startRaw(b)
	ctx := context.Background()
	c := n.Dial(b, benchALPN, core.TransportQUIC, n.Owner)
	rc, err := raw.dial(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer rc.CloseWithError(0, "")
	buf := make([]byte, 64<<10)
	buf[0] = 's'
	var alk, base, rawCPU time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		s, err := c.OpenStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		send(b, s, buf, size)
		alk += time.Since(start)

		start = time.Now()
		cpu := processCPU()
		rs, err := rc.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		send(b, rawStream{rs}, buf, size)
		base += time.Since(start)
		rawCPU += processCPU() - cpu
	}
	mb := float64(size) * float64(b.N) / (1 << 20)
	b.ReportMetric(mb/alk.Seconds(), "alknet-MiB/s")
	b.ReportMetric(mb/base.Seconds(), "raw-MiB/s")
	b.ReportMetric(base.Seconds()/alk.Seconds(), "ratio")
	// The CPU one GiB costs raw quic-go, sender and receiver together: the floor for
	// anything carried over QUIC, compared in docs/benchmarks.md with what sshd spends.
	if rawCPU > 0 {
		b.ReportMetric(rawCPU.Seconds()/(mb/1024), "raw-cpu-s/GiB")
	}
}

// BenchmarkConnectEcho opens a new connection, echoes one byte on a stream, and closes
// it: through the endpoint (with the Mux, peer lookup and auth log) and raw quic-go.
func BenchmarkConnectEcho(b *testing.B) {
	n := benchNode(b)
	raw := startRaw(b)
	ctx := context.Background()
	d := core.Dialer{Key: n.Owner, Transport: core.TransportQUIC}
	var alk, base time.Duration
	echo := func(s io.ReadWriter) {
		if _, err := s.Write([]byte{'e'}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		c, err := d.Dial(ctx, n.Addr(), benchALPN)
		if err != nil {
			b.Fatal(err)
		}
		s, err := c.OpenStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		echo(s)
		c.Close(0, "")
		alk += time.Since(start)

		start = time.Now()
		rc, err := raw.dial(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rs, err := rc.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		echo(rs)
		rc.CloseWithError(0, "")
		base += time.Since(start)
	}
	b.ReportMetric(float64(b.N)/alk.Seconds(), "alknet-conns/s")
	b.ReportMetric(float64(b.N)/base.Seconds(), "raw-conns/s")
	b.ReportMetric(base.Seconds()/alk.Seconds(), "ratio")
}

// BenchmarkIdleConnMemory holds 200 idle connections open and reports the heap they
// take, client and server sides together (both run in this process).
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 200
	measure := func(open func() (io.Closer, error)) float64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var held []io.Closer
		for range conns {
			c, err := open()
			if err != nil {
				b.Fatal(err)
			}
			held = append(held, c)
		}
		time.Sleep(200 * time.Millisecond) // let handshakes settle on the server
		runtime.GC()
		runtime.ReadMemStats(&after)
		for _, c := range held {
			c.Close()
		}
		return float64(after.HeapInuse-before.HeapInuse) / conns
	}
	n := benchNode(b)
	raw := startRaw(b)
	ctx := context.Background()
	d := core.Dialer{Key: n.Owner, Transport: core.TransportQUIC}
	var alk, base float64
	for range b.N {
		alk += measure(func() (io.Closer, error) {
			c, err := d.Dial(ctx, n.Addr(), benchALPN)
			return closerFunc(func() error { return c.Close(0, "") }), err
		})
		base += measure(func() (io.Closer, error) {
			c, err := raw.dial(ctx)
			return closerFunc(func() error { return c.CloseWithError(0, "") }), err
		})
	}
	b.ReportMetric(alk/float64(b.N)/1024, "alknet-KiB/conn")
	b.ReportMetric(base/float64(b.N)/1024, "raw-KiB/conn")
	b.ReportMetric(alk/base, "ratio")
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// BenchmarkKeyExchange compares a full QUIC handshake plus one echoed byte with the
// hybrid post-quantum key exchange (X25519MLKEM768, the default) against classic X25519,
// both against the same endpoint. ratio = hybrid rate ÷ classic rate.
func BenchmarkKeyExchange(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	hybrid := core.Dialer{Key: n.Owner, Transport: core.TransportQUIC, KeyExchange: core.KeyExchangeHybrid}
	classic := core.Dialer{Key: n.Owner, Transport: core.TransportQUIC, KeyExchange: core.KeyExchangeClassic}
	once := func(d *core.Dialer) time.Duration {
		start := time.Now()
		c, err := d.Dial(ctx, n.Addr(), benchALPN)
		if err != nil {
			b.Fatal(err)
		}
		s, err := c.OpenStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		s.Write([]byte{'e'})
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
		c.Close(0, "")
		return time.Since(start)
	}
	var h, c time.Duration
	for range b.N {
		h += once(&hybrid)
		c += once(&classic)
	}
	b.ReportMetric(float64(h.Microseconds())/float64(b.N), "hybrid-µs/handshake")
	b.ReportMetric(float64(c.Microseconds())/float64(b.N), "classic-µs/handshake")
	b.ReportMetric(c.Seconds()/h.Seconds(), "ratio")
}
