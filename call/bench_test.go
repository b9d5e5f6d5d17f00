package call_test

// Benchmarks of the call protocol against raw echoes of the same payload in the same
// run. Run them with:
//
//	go test -run '^$' -bench . -benchtime 2000x ./call
//
// BenchmarkCall reports calls/s and p50/p99 latency of an echo query over one QUIC
// connection (a stream per call, as the Session does) and over one TLS/TCP stream
// (every call shares it), each with 1 and 64 concurrent callers, and next to each
// the same figures for a raw echo of the same frame: raw quic-go for QUIC (a stream
// per echo), raw crypto/tls for TCP (one shared stream). ratio = call calls/s ÷ raw
// calls/s (below 1: slower than the raw echo). BenchmarkBreakdown splits one call's cost into JSON, framing and dispatch.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/quic-go/quic-go"
)

var benchMsg = strings.Repeat("x", 100)

// benchFrame is the request frame of one echo call, the payload the raw echoes bounce.
var benchFrame = call.AppendFrame(nil, call.AppendEnvelope(nil, call.TypeRequested, "0f6e7ad0-6c3e-4c6e-9a4f-2a3b4c5d6e7f",
	[]byte(`{"operationId":"/bench/echo","input":{"msg":"`+benchMsg+`"}}`)))

type stats struct {
	perSec   float64
	p50, p99 time.Duration
}

// measure runs n operations spread over callers goroutines and returns throughput and
// latency percentiles.
func measure(b *testing.B, n, callers int, op func() error) stats {
	b.Helper()
	per := max(n/callers, 1)
	lat := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	errc := make(chan error, callers)
	start := time.Now()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, per)
			for range per {
				t0 := time.Now()
				if err := op(); err != nil {
					errc <- err
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[c] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return stats{
		perSec: float64(len(all)) / elapsed.Seconds(),
		p50:    all[len(all)/2],
		p99:    all[min(len(all)*99/100, len(all)-1)],
	}
}

func report(b *testing.B, s, raw stats) {
	b.ReportMetric(s.perSec, "calls/s")
	b.ReportMetric(float64(s.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(s.p99.Microseconds()), "p99-µs")
	b.ReportMetric(raw.perSec, "raw-calls/s")
	b.ReportMetric(float64(raw.p50.Microseconds()), "raw-p50-µs")
	b.ReportMetric(float64(raw.p99.Microseconds()), "raw-p99-µs")
	b.ReportMetric(s.perSec/raw.perSec, "ratio")
}

func benchRegistry() *call.Registry {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("bench/echo", func(_ context.Context, in echoIn) (echoOut, error) { return echoOut(in), nil }))
	return reg
}

func BenchmarkCall(b *testing.B) {
	mux := core.NewMux()
	mux.Handle(call.ALPN, &call.Server{Registry: benchRegistry()})
	node := coretest.StartNode(b, mux, coretest.WithLimits(core.Limits{MaxStreamsPerConn: 1024}))
	rawQUIC := startRawQUIC(b)
	rawTLS := startRawTLS(b)
	input, _ := json.Marshal(echoIn{Msg: benchMsg})
	for _, tr := range coretest.Transports {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/callers=%d", tr, callers), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				s, err := call.Dial(ctx, &core.Dialer{Key: node.Owner, Transport: tr}, node.Addr(), nil)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				var raw stats
				b.StopTimer()
				if tr == core.TransportQUIC {
					raw = measure(b, b.N, callers, rawQUIC.echo)
				} else {
					raw = measure(b, b.N, callers, rawTLS.echo)
				}
				b.StartTimer()
				st := measure(b, b.N, callers, func() error {
					out, err := s.Call(context.Background(), "bench/echo", input)
					if err == nil && len(out) != len(input) {
						err = fmt.Errorf("echo returned %s", out)
					}
					return err
				})
				b.StopTimer()
				report(b, st, raw)
			})
		}
	}
}

// rawQUIC is a quic-go echo server and one client connection: each echo opens a
// stream, writes benchFrame, and reads the same frame back.
type rawQUICEcho struct{ conn *quic.Conn }

func benchTLS(b *testing.B, alpn string) (*tls.Config, *tls.Config) {
	cert, err := core.SelfSignedCertificate(core.GenerateKey())
	if err != nil {
		b.Fatal(err)
	}
	srv := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13}
	cli := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13}
	return srv, cli
}

// echoFrames copies length-prefixed frames from r back to w until r ends.
func echoFrames(r io.Reader, w io.Writer) error {
	br := bufio.NewReader(r)
	for {
		body, err := call.ReadFrame(br)
		if err != nil {
			return err
		}
		if _, err := w.Write(call.AppendFrame(nil, body)); err != nil {
			return err
		}
	}
}

func startRawQUIC(b *testing.B) *rawQUICEcho {
	srvTLS, cliTLS := benchTLS(b, "bench/echo")
	qcfg := &quic.Config{MaxIncomingStreams: 1024}
	ln, err := quic.ListenAddr("127.0.0.1:0", srvTLS, qcfg)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					s, err := c.AcceptStream(context.Background())
					if err != nil {
						return
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						echoFrames(s, s)
						s.Close()
					}()
				}
			}()
		}
	}()
	conn, err := quic.DialAddr(context.Background(), ln.Addr().String(), cliTLS, qcfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.CloseWithError(0, "")
		ln.Close()
		wg.Wait()
	})
	return &rawQUICEcho{conn: conn}
}

func (r *rawQUICEcho) echo() error {
	s, err := r.conn.OpenStreamSync(context.Background())
	if err != nil {
		return err
	}
	if _, err := s.Write(benchFrame); err != nil {
		return err
	}
	s.Close()
	got := make([]byte, len(benchFrame))
	if _, err := io.ReadFull(s, got); err != nil {
		return err
	}
	if !bytes.Equal(got, benchFrame) {
		return errors.New("raw quic echo mismatch")
	}
	return nil
}

// rawTLSEcho bounces frames over one shared TLS stream; concurrent callers are
// correlated in order, like a pipelined client.
type rawTLSEcho struct {
	mu      sync.Mutex
	conn    *tls.Conn
	br      *bufio.Reader
	waiters chan chan error
}

func startRawTLS(b *testing.B) *rawTLSEcho {
	srvTLS, cliTLS := benchTLS(b, "bench/echo")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		echoFrames(c, c)
		c.Close()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cliTLS)
	if err != nil {
		b.Fatal(err)
	}
	r := &rawTLSEcho{conn: c, br: bufio.NewReader(c), waiters: make(chan chan error, 1024)}
	wg.Add(1)
	go func() { // the reader hands each echoed frame to the oldest waiter
		defer wg.Done()
		for w := range r.waiters {
			body, err := call.ReadFrame(r.br)
			if err == nil && len(body)+4 != len(benchFrame) {
				err = errors.New("raw tls echo mismatch")
			}
			w <- err
		}
	}()
	b.Cleanup(func() {
		close(r.waiters)
		c.Close()
		ln.Close()
		wg.Wait()
	})
	return r
}

func (r *rawTLSEcho) echo() error {
	w := make(chan error, 1)
	r.mu.Lock()
	r.waiters <- w
	_, err := r.conn.Write(benchFrame)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return <-w
}

// BenchmarkBreakdown splits one echo call into its parts.
func BenchmarkBreakdown(b *testing.B) {
	reg := benchRegistry()
	input, _ := json.Marshal(echoIn{Msg: benchMsg})
	reqBody := benchFrame[4:]
	respBody := call.AppendEnvelope(nil, call.TypeResponded, "0f6e7ad0-6c3e-4c6e-9a4f-2a3b4c5d6e7f", []byte(`{"output":`+string(input)+`}`))

	// json: the typed handler's decode of the input and encode of the output, and the
	// client's encode/decode in call.Do.
	b.Run("json/typed-codec", func(b *testing.B) {
		for b.Loop() {
			var in echoIn
			json.Unmarshal(input, &in)
			out, _ := json.Marshal(echoOut(in))
			var got echoOut
			json.Unmarshal(out, &got)
		}
	})
	// json: the two envelopes parsed (request on the server, response on the client).
	b.Run("json/envelopes", func(b *testing.B) {
		for b.Loop() {
			call.ParseEnvelope(reqBody)
			call.ParseEnvelope(respBody)
		}
	})
	// framing: building both frames and reading them back through a bufio.Reader.
	b.Run("framing", func(b *testing.B) {
		var buf bytes.Buffer
		br := bufio.NewReader(&buf)
		for b.Loop() {
			buf.Write(call.AppendFrame(nil, call.AppendEnvelope(nil, call.TypeRequested, "id", []byte(`{"operationId":"/bench/echo","input":`+string(input)+`}`))))
			buf.Write(call.AppendFrame(nil, respBody))
			call.ReadFrame(br)
			call.ReadFrame(br)
		}
	})
	// dispatch: lookup, access check, schema validation, handler, output encoding, in
	// process (Registry.Local), with no framing or transport.
	b.Run("dispatch/local", func(b *testing.B) {
		l := reg.Local(core.Peer{Identity: &core.Identity{Name: "b", Scopes: []string{"call"}}})
		for b.Loop() {
			if _, err := l.Call(context.Background(), "bench/echo", input); err != nil {
				b.Fatal(err)
			}
		}
	})
	// session: the whole protocol (framing, streams, correlation, dispatch) over an
	// in-memory connection, without crypto or sockets.
	b.Run("session/pipe", func(b *testing.B) {
		c, srv := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "b", Scopes: []string{"call"}}})
		done := make(chan struct{})
		go func() { defer close(done); (&call.Server{Registry: reg}).ServeConn(context.Background(), srv) }()
		s := call.NewClient(c, nil)
		for b.Loop() {
			if _, err := s.Call(context.Background(), "bench/echo", input); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		<-done
	})
}
