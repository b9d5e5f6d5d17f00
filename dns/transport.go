package dns

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/miekg/dns"
)

// DoQ error codes (RFC 9250 section 4.3), sent as QUIC application close codes.
const (
	DoQNoError       uint64 = 0x0
	DoQInternalError uint64 = 0x1
	DoQProtocolError uint64 = 0x2
	DoQRequestCancel uint64 = 0x3
	DoQExcessiveLoad uint64 = 0x4
)

// Timeouts and bounds for the stream transports.
const (
	streamReadTimeout = 10 * time.Second // one DoQ query must arrive within this
	dotIdleTimeout    = 30 * time.Second // a DoT connection idle this long is closed
	dotMaxInflight    = 64               // queries answered at once on one DoT connection
	paddingBlock      = 468              // RFC 8467 recommended response block length
)

// errProtocol marks a DoQ protocol violation: the connection closes with
// DOQ_PROTOCOL_ERROR.
var errProtocol = errors.New("dns: DoQ protocol error")

// readFrame reads one 2-byte length-prefixed DNS message.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// frame returns msg with its 2-byte length prefix.
func frame(msg []byte) []byte {
	out := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	copy(out[2:], msg)
	return out
}

// formErr answers a message that did not parse: FORMERR with the request's ID when at
// least a header arrived, otherwise nothing.
func formErr(raw []byte) *dns.Msg {
	if len(raw) < 12 {
		return nil
	}
	m := new(dns.Msg)
	m.Id = binary.BigEndian.Uint16(raw)
	m.Response = true
	m.Opcode = int(raw[2]>>3) & 0xF
	m.Rcode = dns.RcodeFormatError
	return m
}

// wantsPadding reports whether the query carries the EDNS(0) padding option.
func wantsPadding(req *dns.Msg) bool {
	opt := req.IsEdns0()
	if opt == nil {
		return false
	}
	for _, o := range opt.Option {
		if o.Option() == dns.EDNS0PADDING {
			return true
		}
	}
	return false
}

// packResponse packs resp, first padding it to a multiple of 468 bytes (RFC 8467) when
// the query asked for padding, and cutting it to fit 65535 bytes.
func packResponse(req, resp *dns.Msg) ([]byte, error) {
	resp.Compress = true
	if !wantsPadding(req) {
		b, err := resp.Pack()
		if err == nil && len(b) > dns.MaxMsgSize {
			resp.Truncate(dns.MaxMsgSize)
			return resp.Pack()
		}
		return b, err
	}
	opt := resp.IsEdns0()
	if opt == nil {
		resp.SetEdns0(1232, false)
		opt = resp.IsEdns0()
	}
	pad := &dns.EDNS0_PADDING{}
	opt.Option = append(opt.Option, pad)
	b, err := resp.Pack() // with an empty padding option: 4 bytes of option header
	if err != nil {
		return nil, err
	}
	if n := len(b) % paddingBlock; n != 0 && len(b)+paddingBlock-n <= dns.MaxMsgSize {
		pad.Padding = make([]byte, paddingBlock-n)
		return resp.Pack()
	}
	return b, nil
}

// serveDoQ serves RFC 9250: every client-opened stream carries one length-prefixed
// query with message ID 0 and gets one response, then both sides close the stream.
func (s *Server) serveDoQ(ctx context.Context, c core.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	info := Info{Transport: "doq", Peer: c.Peer()}
	var wg sync.WaitGroup
	defer wg.Wait()
	var once sync.Once
	fail := func(code uint64, reason string) {
		once.Do(func() {
			c.Close(code, reason)
			cancel()
		})
	}
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		wg.Go(func() {
			defer st.Close()
			if err := s.doqStream(ctx, st, info); err != nil {
				if errors.Is(err, errProtocol) {
					fail(DoQProtocolError, err.Error())
				}
			}
		})
	}
}

func (s *Server) doqStream(ctx context.Context, st core.Stream, info Info) error {
	st.SetReadDeadline(time.Now().Add(streamReadTimeout))
	raw, err := readFrame(st, nil)
	if err != nil {
		return err
	}
	if len(raw) >= 2 && binary.BigEndian.Uint16(raw) != 0 {
		return fmt.Errorf("%w: message ID must be 0", errProtocol)
	}
	req := new(dns.Msg)
	var resp *dns.Msg
	if err := req.Unpack(raw); err != nil {
		if resp = formErr(raw); resp == nil {
			return fmt.Errorf("%w: message shorter than a DNS header", errProtocol)
		}
	} else {
		if opt := req.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if o.Option() == dns.EDNS0TCPKEEPALIVE {
					return fmt.Errorf("%w: edns-tcp-keepalive is not allowed", errProtocol)
				}
			}
		}
		resp = s.Handle(ctx, req, info)
	}
	resp.Id = 0
	b, err := packResponse(req, resp)
	if err != nil {
		return err
	}
	st.SetWriteDeadline(time.Now().Add(streamReadTimeout))
	if _, err := st.Write(frame(b)); err != nil {
		return err
	}
	return st.CloseWrite()
}

// serveDoT serves RFC 7858 on the connection's one stream: length-prefixed queries,
// pipelined, answered concurrently and so possibly out of order.
func (s *Server) serveDoT(ctx context.Context, c core.Conn) error {
	st, err := c.AcceptStream(ctx)
	if err != nil {
		return nil
	}
	defer st.Close()
	info := Info{Transport: "dot", Peer: c.Peer()}
	var wmu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, dotMaxInflight)
	write := func(b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		st.SetWriteDeadline(time.Now().Add(dotIdleTimeout))
		if _, err := st.Write(frame(b)); err != nil {
			st.Close()
		}
	}
	for {
		st.SetReadDeadline(time.Now().Add(dotIdleTimeout))
		raw, err := readFrame(st, nil)
		if err != nil {
			return nil
		}
		req := new(dns.Msg)
		if err := req.Unpack(raw); err != nil {
			resp := formErr(raw)
			if resp == nil {
				return nil
			}
			if b, err := resp.Pack(); err == nil {
				write(b)
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		wg.Go(func() {
			defer func() { <-sem }()
			resp := s.Handle(ctx, req, info)
			if b, err := packResponse(req, resp); err == nil {
				write(b)
			}
		})
	}
}

// DoH returns an http.Handler for DNS over HTTPS (RFC 8484): GET with the query in
// the "dns" parameter (base64url) and POST with an application/dns-message body.
// Responses carry Cache-Control max-age set to the smallest TTL in the answer. Mount it
// at /dns-query. Every DoH client is anonymous: dynamic updates are refused.
func (s *Server) DoH() http.Handler { return dohHandler{s} }

type dohHandler struct{ s *Server }

func (h dohHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var raw []byte
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q := r.URL.Query().Get("dns")
		if q == "" {
			http.Error(w, "dns: missing the dns query parameter", http.StatusBadRequest)
			return
		}
		var err error
		raw, err = base64.RawURLEncoding.DecodeString(q)
		if err != nil {
			if raw, err = base64.URLEncoding.DecodeString(q); err != nil {
				http.Error(w, "dns: the dns parameter is not base64url", http.StatusBadRequest)
				return
			}
		}
	case http.MethodPost:
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/dns-message" {
			http.Error(w, "dns: POST needs Content-Type application/dns-message", http.StatusUnsupportedMediaType)
			return
		}
		var err error
		raw, err = io.ReadAll(io.LimitReader(r.Body, dns.MaxMsgSize+1))
		if err != nil || len(raw) > dns.MaxMsgSize {
			http.Error(w, "dns: bad or oversized body", http.StatusRequestEntityTooLarge)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "dns: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		http.Error(w, "dns: malformed DNS message", http.StatusBadRequest)
		return
	}
	info := Info{Transport: "https", Peer: core.Peer{RemoteAddr: remoteAddr(r.RemoteAddr)}}
	resp := h.s.Handle(r.Context(), req, info)
	b, err := packResponse(req, resp)
	if err != nil {
		http.Error(w, "dns: cannot encode the answer", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/dns-message")
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	if ttl, ok := cacheTTL(resp); ok {
		hd.Set("Cache-Control", "max-age="+strconv.FormatUint(uint64(ttl), 10))
	} else {
		hd.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

func remoteAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return nil
	}
	return a
}

// cacheTTL is the freshness lifetime of a response (RFC 8484 section 5.1): the smallest
// TTL among its records, the negative-caching TTL of the SOA for a negative answer,
// and nothing for errors.
func cacheTTL(m *dns.Msg) (uint32, bool) {
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return 0, false
	}
	var ttl uint32
	found := false
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			if t := rr.Header().Ttl; !found || t < ttl {
				ttl, found = t, true
			}
		}
	}
	return ttl, found
}

// classicHandler serves plain DNS. Over UDP it rate-limits per source address and
// truncates answers to the client's buffer size (TC set).
func (s *Server) classicHandler(network string) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		info := Info{Transport: network, Peer: core.Peer{RemoteAddr: w.RemoteAddr()}}
		if network == "udp" && s.limiter != nil {
			switch s.limiter.check(w.RemoteAddr()) {
			case rateDrop:
				return
			case rateSlip:
				// Over the limit: a truncated empty answer sends a real client to TCP.
				resp := new(dns.Msg)
				resp.SetReply(req)
				resp.Truncated = true
				w.WriteMsg(resp)
				return
			}
		}
		resp := s.Handle(context.Background(), req, info)
		if network == "udp" {
			size := dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = min(max(int(opt.UDPSize()), dns.MinMsgSize), 4096)
			}
			resp.Truncate(size)
		} else {
			resp.Compress = true
		}
		w.WriteMsg(resp)
	})
}

// Rate-limit decisions.
const (
	rateOK = iota
	rateSlip
	rateDrop
)

// rateLimiter is a per-source token bucket for classic UDP responses. Over the limit,
// every second response slips out truncated (so real clients retry over TCP) and the
// rest are dropped, as response rate limiting does in other servers.
type rateLimiter struct {
	rate float64
	mu   sync.Mutex
	m    map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
	over   int
}

func newRateLimiter(perSecond int) *rateLimiter {
	return &rateLimiter{rate: float64(perSecond), m: make(map[string]*bucket)}
}

func (l *rateLimiter) check(a net.Addr) int {
	ip := ""
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP.String()
	default:
		if a != nil {
			ip, _, _ = net.SplitHostPort(a.String())
		}
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[ip]
	if b == nil {
		if len(l.m) >= 65536 {
			for k, v := range l.m {
				if now.Sub(v.last) > 10*time.Second {
					delete(l.m, k)
				}
			}
		}
		b = &bucket{tokens: l.rate, last: now}
		l.m[ip] = b
	}
	b.tokens = min(l.rate, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.over = 0
		return rateOK
	}
	b.over++
	if b.over%2 == 1 {
		return rateSlip
	}
	return rateDrop
}
