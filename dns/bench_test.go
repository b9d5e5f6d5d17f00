package dns_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
)

// benchSamples is the number of queries each transport answers per benchmark run,
// whatever b.N is, so that percentiles mean something even with -benchtime 1x.
const benchSamples = 3000

// bareServer is the baseline: a plain miekg/dns UDP server answering the same zone from
// a map, with none of this package's code in the path.
func bareServer(tb testing.TB) string {
	tb.Helper()
	f, err := os.Open(testZone)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	z, err := alkdns.ParseZone(f, "", testZone)
	if err != nil {
		tb.Fatal(err)
	}
	index := map[string][]dns.RR{}
	for _, rr := range z.Records() {
		k := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
		index[k] = append(index[k], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		m.Answer = index[strings.ToLower(q.Name)+"/"+dns.TypeToString[q.Qtype]]
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	<-started
	tb.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

type latencies []time.Duration

func (l latencies) stats() (qps float64, p50, p99 time.Duration) {
	var total time.Duration
	for _, d := range l {
		total += d
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return float64(len(s)) / total.Seconds(), s[len(s)/2], s[len(s)*99/100]
}

// measure runs n sequential queries through ask and returns each one's latency.
func measure(b *testing.B, n int, ask func(*dns.Msg) (*dns.Msg, error)) latencies {
	b.Helper()
	out := make(latencies, 0, n)
	q := query("www.example.test.", dns.TypeA)
	for range n {
		start := time.Now()
		r, err := ask(q)
		for retry := 0; err != nil && retry < 2; retry++ {
			r, err = ask(q) // a UDP datagram lost on a loaded machine: count the wait
		}
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Answer) != 1 {
			b.Fatalf("bad answer %v", r)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// BenchmarkQueries measures one client asking sequentially over DoQ (one connection),
// DoT, and classic UDP, against a bare miekg/dns UDP server answering the same zone in
// the same run. Metrics: queries per second, p50 and p99 latency per transport, and
// each transport's p50 as a multiple of the bare server's.
func BenchmarkQueries(b *testing.B) {
	srv, node := startDNS(b, alkdns.Config{RateLimit: -1})
	udpAddr := startClassic(b, srv)
	bare := bareServer(b)
	ctx := context.Background()

	doq := &alkdns.Client{Addr: node.Addr()}
	dot := &alkdns.Client{Addr: node.Addr(), DoT: true}
	b.Cleanup(func() { doq.Close(); dot.Close() })
	udpClient := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	transports := []struct {
		name string
		ask  func(*dns.Msg) (*dns.Msg, error)
	}{
		{"bare", func(q *dns.Msg) (*dns.Msg, error) { r, _, err := udpClient.Exchange(q, bare); return r, err }},
		{"udp", func(q *dns.Msg) (*dns.Msg, error) { r, _, err := udpClient.Exchange(q, udpAddr); return r, err }},
		{"doq", func(q *dns.Msg) (*dns.Msg, error) { return doq.Exchange(ctx, q) }},
		{"dot", func(q *dns.Msg) (*dns.Msg, error) { return dot.Exchange(ctx, q) }},
	}
	n := max(b.N, benchSamples)
	b.ResetTimer()
	var bareP50 time.Duration
	for _, tr := range transports {
		measure(b, 100, tr.ask) // warm up: connections, handshakes
		qps, p50, p99 := measure(b, n, tr.ask).stats()
		b.ReportMetric(qps, tr.name+"_qps")
		b.ReportMetric(float64(p50.Microseconds()), tr.name+"_p50_us")
		b.ReportMetric(float64(p99.Microseconds()), tr.name+"_p99_us")
		if tr.name == "bare" {
			bareP50 = p50
		} else {
			b.ReportMetric(float64(p50)/float64(bareP50), tr.name+"_p50_x_bare")
		}
	}
}

// BenchmarkDoQNewConnection measures a new DoQ connection (QUIC handshake) plus one
// query, against one query on an open connection, in the same run.
func BenchmarkDoQNewConnection(b *testing.B) {
	_, node := startDNS(b, alkdns.Config{RateLimit: -1})
	addr := node.UDPAddr().String()
	q := query("www.example.test.", dns.TypeA)
	q.Id = 0
	wire, _ := q.Pack()
	tlsConf := &tls.Config{NextProtos: []string{"doq"}, InsecureSkipVerify: true}
	newConnQuery := func() time.Duration {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := quic.DialAddr(ctx, addr, tlsConf, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := rawDoQ(conn, wire); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		conn.CloseWithError(0, "")
		return d
	}
	open, err := quic.DialAddr(context.Background(), addr, tlsConf, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { open.CloseWithError(0, "") })
	n := max(b.N, 300)
	b.ResetTimer()
	var fresh, warm latencies
	for range n {
		fresh = append(fresh, newConnQuery())
	}
	for range n {
		start := time.Now()
		if _, _, err := rawDoQ(open, wire); err != nil {
			b.Fatal(err)
		}
		warm = append(warm, time.Since(start))
	}
	_, freshP50, _ := fresh.stats()
	_, warmP50, _ := warm.stats()
	b.ReportMetric(float64(freshP50.Microseconds()), "new_conn_p50_us")
	b.ReportMetric(float64(warmP50.Microseconds()), "open_conn_p50_us")
	b.ReportMetric(float64(freshP50)/float64(warmP50), "new_x_open")
}

// benchWorkers is the number of clients asking at once in BenchmarkQueriesParallel.
const benchWorkers = 16

// BenchmarkQueriesParallel is BenchmarkQueries with 16 concurrent askers: over DoQ
// they share one QUIC connection (a stream each), over DoT one pipelined TLS
// connection, over UDP each has its own socket per query, as has the bare baseline.
// Metrics: total queries per second, p50 and p99, and each transport's qps as a
// multiple of the bare server's.
func BenchmarkQueriesParallel(b *testing.B) {
	srv, node := startDNS(b, alkdns.Config{RateLimit: -1})
	udpAddr := startClassic(b, srv)
	bare := bareServer(b)
	ctx := context.Background()
	doq := &alkdns.Client{Addr: node.Addr()}
	dot := &alkdns.Client{Addr: node.Addr(), DoT: true}
	b.Cleanup(func() { doq.Close(); dot.Close() })
	udpClient := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	transports := []struct {
		name string
		ask  func(*dns.Msg) (*dns.Msg, error)
	}{
		{"bare", func(q *dns.Msg) (*dns.Msg, error) { r, _, err := udpClient.Exchange(q, bare); return r, err }},
		{"udp", func(q *dns.Msg) (*dns.Msg, error) { r, _, err := udpClient.Exchange(q, udpAddr); return r, err }},
		{"doq", func(q *dns.Msg) (*dns.Msg, error) { return doq.Exchange(ctx, q) }},
		{"dot", func(q *dns.Msg) (*dns.Msg, error) { return dot.Exchange(ctx, q) }},
	}
	per := max(b.N, benchSamples) / benchWorkers
	b.ResetTimer()
	var bareQPS float64
	for _, tr := range transports {
		measure(b, 100, tr.ask)
		results := make([]latencies, benchWorkers)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range benchWorkers {
			wg.Go(func() { results[w] = measure(b, per, tr.ask) })
		}
		wg.Wait()
		elapsed := time.Since(start)
		all := slices.Concat(results...)
		_, p50, p99 := all.stats()
		qps := float64(len(all)) / elapsed.Seconds()
		b.ReportMetric(qps, tr.name+"_qps")
		b.ReportMetric(float64(p50.Microseconds()), tr.name+"_p50_us")
		b.ReportMetric(float64(p99.Microseconds()), tr.name+"_p99_us")
		if tr.name == "bare" {
			bareQPS = qps
		} else {
			b.ReportMetric(qps/bareQPS, tr.name+"_qps_x_bare")
		}
	}
}
