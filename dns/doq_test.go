package dns_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
)

// This file is a DoQ client written from RFC 9250 alone, on raw quic-go: ALPN "doq",
// one bidirectional stream per query, a 2-byte length prefix, message ID 0, and the
// client's FIN after the query.

func dialRawDoQ(t *testing.T, addr string) *quic.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Opportunistic privacy (RFC 9250 section 5.1): no authentication of the server.
	conn, err := quic.DialAddr(ctx, addr, &tls.Config{NextProtos: []string{"doq"}, InsecureSkipVerify: true}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	if got := conn.ConnectionState().TLS.NegotiatedProtocol; got != "doq" {
		t.Fatalf("ALPN %q, want doq", got)
	}
	return conn
}

// rawDoQ sends msg (already packed) on a new stream and reads the response.
func rawDoQ(conn *quic.Conn, msg []byte) (*dns.Msg, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, nil, err
	}
	st.SetDeadline(time.Now().Add(5 * time.Second))
	buf := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	if _, err := st.Write(append(buf, msg...)); err != nil {
		return nil, nil, err
	}
	st.Close() // FIN: the query is complete
	var hdr [2]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		return nil, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(st, body); err != nil {
		return nil, nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(body); err != nil {
		return nil, nil, err
	}
	return m, body, nil
}

func packQuery(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRawDoQAnswers(t *testing.T) {
	_, node := startDNS(t, alkdns.Config{})
	conn := dialRawDoQ(t, node.UDPAddr().String())
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  string
	}{
		{"www.example.test.", dns.TypeA, dns.RcodeSuccess, "192.0.2.1"},
		{"alias.example.test.", dns.TypeAAAA, dns.RcodeSuccess, "2001:db8::1"},
		{"x.wild.example.test.", dns.TypeTXT, dns.RcodeSuccess, "wildcard"},
		{"nope.example.test.", dns.TypeA, dns.RcodeNameError, ""},
		{"www.example.org.", dns.TypeA, dns.RcodeRefused, ""},
	}
	for _, tc := range tests {
		q := query(tc.name, tc.qtype)
		q.Id = 0
		m, _, err := rawDoQ(conn, packQuery(t, q))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if m.Id != 0 || m.Rcode != tc.rcode {
			t.Fatalf("%s: id %d rcode %s, want id 0 rcode %s", tc.name, m.Id, dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
		}
		if tc.want != "" && (len(m.Answer) == 0 || !strings.Contains(m.Answer[len(m.Answer)-1].String(), tc.want)) {
			t.Fatalf("%s: answer %v lacks %s", tc.name, m.Answer, tc.want)
		}
	}
}

// TestRawDoQConcurrent runs many queries at once on one connection.
func TestRawDoQConcurrent(t *testing.T) {
	_, node := startDNS(t, alkdns.Config{})
	conn := dialRawDoQ(t, node.UDPAddr().String())
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			name := []string{"www.example.test.", "mail.example.test.", "a.wild.example.test."}[i%3]
			q := query(name, dns.TypeA)
			q.Id = 0
			b, _ := q.Pack()
			m, _, err := rawDoQ(conn, b)
			if err == nil && (m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Question[0].Name != name) {
				err = errors.New("wrong answer for " + name + ": " + m.String())
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestRawDoQNonZeroID: a query with a message ID other than 0 closes the connection
// with DOQ_PROTOCOL_ERROR (0x2).
func TestRawDoQNonZeroID(t *testing.T) {
	_, node := startDNS(t, alkdns.Config{})
	conn := dialRawDoQ(t, node.UDPAddr().String())
	q := query("www.example.test.", dns.TypeA)
	q.Id = 4242
	_, _, err := rawDoQ(conn, packQuery(t, q))
	var appErr *quic.ApplicationError
	if !errors.As(err, &appErr) {
		select {
		case <-conn.Context().Done():
			err = context.Cause(conn.Context())
		case <-time.After(5 * time.Second):
		}
	}
	if !errors.As(err, &appErr) || !appErr.Remote || appErr.ErrorCode != 0x2 {
		t.Fatalf("err = %v, want a remote application close with code 0x2 (DOQ_PROTOCOL_ERROR)", err)
	}
	// The connection is gone: a further query fails.
	q.Id = 0
	if _, _, err := rawDoQ(conn, packQuery(t, q)); err == nil {
		t.Fatal("query after DOQ_PROTOCOL_ERROR succeeded")
	}
}

// TestRawDoQOtherConnUnaffected: a protocol error on one connection leaves another
// connection working.
func TestRawDoQOtherConnUnaffected(t *testing.T) {
	_, node := startDNS(t, alkdns.Config{})
	good := dialRawDoQ(t, node.UDPAddr().String())
	bad := dialRawDoQ(t, node.UDPAddr().String())
	q := query("www.example.test.", dns.TypeA)
	q.Id = 7
	rawDoQ(bad, packQuery(t, q))
	q.Id = 0
	if m, _, err := rawDoQ(good, packQuery(t, q)); err != nil || len(m.Answer) != 1 {
		t.Fatalf("good connection: %v %v", m, err)
	}
}

// TestRawDoQPadding: with the EDNS(0) padding option in the query, the response is a
// multiple of 468 bytes (RFC 8467); without it, no padding is added.
func TestRawDoQPadding(t *testing.T) {
	_, node := startDNS(t, alkdns.Config{})
	conn := dialRawDoQ(t, node.UDPAddr().String())
	for _, name := range []string{"www.example.test.", "big.example.test.", "nope.example.test."} {
		q := query(name, dns.TypeTXT)
		q.Id = 0
		q.SetEdns0(1232, false)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 100)})
		m, raw, err := rawDoQ(conn, packQuery(t, q))
		if err != nil {
			t.Fatal(err)
		}
		if len(raw)%468 != 0 {
			t.Fatalf("%s: padded response is %d bytes, not a multiple of 468", name, len(raw))
		}
		if opt := m.IsEdns0(); opt == nil || len(opt.Option) == 0 || opt.Option[0].Option() != dns.EDNS0PADDING {
			t.Fatalf("%s: response has no padding option", name)
		}
		q.IsEdns0().Option = nil
		_, raw, err = rawDoQ(conn, packQuery(t, q))
		if err != nil {
			t.Fatal(err)
		}
		if len(raw)%468 == 0 {
			t.Fatalf("%s: unpadded query got a %d-byte response", name, len(raw))
		}
	}
}

// TestRawDoQMalformed: garbage in one stream gets FORMERR or a closed stream, and
// never takes the server down.
func TestRawDoQMalformed(t *testing.T) {
	_, node := startDNS(t, alkdns.Config{})
	conn := dialRawDoQ(t, node.UDPAddr().String())
	garbage := [][]byte{
		{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w'}, // question runs off the end
		{0, 0, 0x01, 0x00, 0, 5, 0, 0, 0, 0, 0, 0},   // five questions, none present
	}
	for _, g := range garbage {
		m, _, err := rawDoQ(conn, g)
		if err != nil {
			t.Fatalf("garbage %x: %v", g, err)
		}
		if m.Rcode != dns.RcodeFormatError {
			t.Fatalf("garbage %x: rcode %s, want FORMERR", g, dns.RcodeToString[m.Rcode])
		}
	}
	q := query("www.example.test.", dns.TypeA)
	q.Id = 0
	if m, _, err := rawDoQ(conn, packQuery(t, q)); err != nil || len(m.Answer) != 1 {
		t.Fatalf("after garbage: %v %v", m, err)
	}
}
