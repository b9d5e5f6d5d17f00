package dns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// maxCNAMEChain bounds how many CNAMEs one answer follows inside a zone.
const maxCNAMEChain = 8

// ErrNoSOA is returned when a zone file has no SOA record at its origin.
var ErrNoSOA = errors.New("dns: zone has no SOA record at its origin")

// Zone is one authoritative zone: the records of an RFC 1035 zone file, indexed by
// owner name and type. A Zone is safe for concurrent reads; [Server] copies a zone
// before it changes it (dynamic updates), so readers never see a half-applied change.
type Zone struct {
	// Origin is the zone's apex, fully qualified and lower case.
	Origin string
	// File is the zone file it was read from, if any.
	File string

	soa   *dns.SOA
	names map[string]map[uint16][]dns.RR // owner (lower case) -> type -> records
	ents  map[string]bool                // empty non-terminals
}

// LoadZone reads the zone file at path. origin may be empty when the file names its
// origin with $ORIGIN or uses fully qualified owner names; the origin is then the
// owner of the SOA record.
func LoadZone(path, origin string) (*Zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns: zone file: %w", err)
	}
	defer f.Close()
	z, err := ParseZone(f, origin, path)
	if err != nil {
		return nil, err
	}
	z.File = path
	return z, nil
}

// ParseZone reads a zone in RFC 1035 master-file format from r. file names the source
// in error messages. $INCLUDE is refused.
func ParseZone(r io.Reader, origin, file string) (*Zone, error) {
	zp := dns.NewZoneParser(r, origin, file)
	zp.SetIncludeAllowed(false)
	zp.SetDefaultTTL(3600)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
		if len(rrs) > 1_000_000 {
			return nil, fmt.Errorf("dns: zone %s: more than a million records", file)
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("dns: zone %s: %w", file, err)
	}
	if origin == "" {
		for _, rr := range rrs {
			if soa, ok := rr.(*dns.SOA); ok {
				origin = soa.Hdr.Name
				break
			}
		}
	}
	if origin == "" {
		return nil, fmt.Errorf("dns: zone %s: %w", file, ErrNoSOA)
	}
	return NewZone(origin, rrs)
}

// NewZone builds a zone at origin from records. Records outside the zone are an error,
// and so is a zone without an SOA at its origin.
func NewZone(origin string, rrs []dns.RR) (*Zone, error) {
	origin = strings.ToLower(dns.Fqdn(origin))
	if _, ok := dns.IsDomainName(origin); !ok {
		return nil, fmt.Errorf("dns: zone origin %q is not a domain name", origin)
	}
	z := &Zone{Origin: origin, names: make(map[string]map[uint16][]dns.RR), ents: make(map[string]bool)}
	for _, rr := range rrs {
		if err := z.add(rr); err != nil {
			return nil, err
		}
	}
	if z.soa == nil {
		return nil, fmt.Errorf("dns: zone %s: %w", origin, ErrNoSOA)
	}
	z.index()
	return z, nil
}

func (z *Zone) add(rr dns.RR) error {
	h := rr.Header()
	name := strings.ToLower(h.Name)
	if !dns.IsSubDomain(z.Origin, name) {
		return fmt.Errorf("dns: zone %s: record %q is outside the zone", z.Origin, h.Name)
	}
	if h.Class != dns.ClassINET {
		return fmt.Errorf("dns: zone %s: record %q: only class IN is served", z.Origin, h.Name)
	}
	if _, err := dns.PackRR(rr, make([]byte, dns.MaxMsgSize), 0, nil, false); err != nil {
		return fmt.Errorf("dns: zone %s: record %q cannot be encoded: %v", z.Origin, h.Name, err)
	}
	if soa, ok := rr.(*dns.SOA); ok {
		if name != z.Origin {
			return fmt.Errorf("dns: zone %s: SOA record %q is not at the origin", z.Origin, h.Name)
		}
		if z.soa != nil {
			return fmt.Errorf("dns: zone %s: more than one SOA record", z.Origin)
		}
		z.soa = soa
	}
	byType := z.names[name]
	if byType == nil {
		byType = make(map[uint16][]dns.RR)
		z.names[name] = byType
	}
	for _, old := range byType[h.Rrtype] {
		if dns.IsDuplicate(old, rr) {
			return nil
		}
	}
	byType[h.Rrtype] = append(byType[h.Rrtype], rr)
	return nil
}

// index records the empty non-terminals: names with no records of their own but
// with descendants, which answer NODATA rather than NXDOMAIN.
func (z *Zone) index() {
	z.ents = make(map[string]bool)
	for name := range z.names {
		for p := parent(name); p != "" && dns.IsSubDomain(z.Origin, p); p = parent(p) {
			if _, ok := z.names[p]; !ok {
				z.ents[p] = true
			}
			if p == z.Origin {
				break
			}
		}
	}
}

// parent returns name less its first label, or "" for the root.
func parent(name string) string {
	if name == "." || name == "" {
		return ""
	}
	off, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[off:]
}

// SOA returns the zone's SOA record.
func (z *Zone) SOA() *dns.SOA { return z.soa }

// Records returns a copy of every record in the zone.
func (z *Zone) Records() []dns.RR {
	var out []dns.RR
	for _, byType := range z.names {
		for _, rrs := range byType {
			for _, rr := range rrs {
				out = append(out, dns.Copy(rr))
			}
		}
	}
	return out
}

// Lookup returns the zone's authoritative answer to (name, qtype) as a response
// message: records, CNAMEs followed inside the zone, wildcard expansion, a referral at
// a zone cut, or NXDOMAIN/NODATA with the SOA in the authority section. A name outside
// the zone gets REFUSED.
func (z *Zone) Lookup(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Response = true
	if !dns.IsSubDomain(z.Origin, strings.ToLower(m.Question[0].Name)) {
		m.Rcode = dns.RcodeRefused
		return m
	}
	z.answer(m, m.Question[0].Name, qtype)
	return m
}

func (z *Zone) exists(name string) bool {
	_, ok := z.names[name]
	return ok || z.ents[name]
}

// negativeSOA is the SOA for the authority section of a negative answer, its TTL the
// smaller of its own TTL and its MINIMUM field (RFC 2308).
func (z *Zone) negativeSOA() dns.RR {
	soa := dns.Copy(z.soa).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}

// answer fills m with the zone's answer to (qname, qtype): the records, CNAMEs
// followed inside the zone, wildcards expanded, a referral at a zone cut, or a negative
// answer with the SOA in the authority section. qname must be inside the zone.
func (z *Zone) answer(m *dns.Msg, qname string, qtype uint16) {
	m.Authoritative = true
	name := strings.ToLower(qname)
	owner := qname // the owner name written in answers: the name as asked
	for range maxCNAMEChain {
		if cut := z.delegation(name); cut != nil {
			if len(m.Answer) == 0 {
				m.Authoritative = false
			}
			m.Ns = append(m.Ns, copyRRs(cut, "")...)
			z.addGlue(m, cut)
			return
		}
		byType, ok := z.names[name]
		if !ok && !z.ents[name] {
			byType = z.wildcard(name)
			if byType == nil {
				m.Rcode = dns.RcodeNameError
				m.Ns = append(m.Ns, z.negativeSOA())
				return
			}
		}
		if rrs := byType[qtype]; len(rrs) > 0 {
			m.Answer = append(m.Answer, copyRRs(rrs, owner)...)
			z.addGlue(m, rrs)
			return
		}
		if qtype == dns.TypeANY && len(byType) > 0 {
			for _, rrs := range byType {
				m.Answer = append(m.Answer, copyRRs(rrs, owner)...)
			}
			return
		}
		cname := byType[dns.TypeCNAME]
		if len(cname) == 0 {
			m.Ns = append(m.Ns, z.negativeSOA()) // NODATA
			return
		}
		m.Answer = append(m.Answer, copyRRs(cname[:1], owner)...)
		target := strings.ToLower(cname[0].(*dns.CNAME).Target)
		if !dns.IsSubDomain(z.Origin, target) {
			return // the client's resolver follows it
		}
		name, owner = target, cname[0].(*dns.CNAME).Target
	}
	// A CNAME loop, or a chain longer than we follow.
	m.Rcode = dns.RcodeServerFailure
}

// delegation returns the NS records of a zone cut at or above name (below the apex),
// or nil.
func (z *Zone) delegation(name string) []dns.RR {
	var cut []dns.RR
	for p := name; p != "" && p != z.Origin && dns.IsSubDomain(z.Origin, p); p = parent(p) {
		if ns := z.names[p][dns.TypeNS]; len(ns) > 0 {
			cut = ns // keep the highest cut
		}
	}
	return cut
}

// wildcard returns the records of the wildcard that covers name (RFC 4592): the
// "*" child of name's closest encloser, or nil.
func (z *Zone) wildcard(name string) map[uint16][]dns.RR {
	for p := parent(name); p != "" && dns.IsSubDomain(z.Origin, p); p = parent(p) {
		if z.exists(p) {
			return z.names["*."+p]
		}
	}
	return nil
}

// addGlue adds in-zone addresses for the targets of NS, MX and SRV records.
func (z *Zone) addGlue(m *dns.Msg, rrs []dns.RR) {
	for _, rr := range rrs {
		var target string
		switch rr := rr.(type) {
		case *dns.NS:
			target = rr.Ns
		case *dns.MX:
			target = rr.Mx
		case *dns.SRV:
			target = rr.Target
		default:
			continue
		}
		target = strings.ToLower(target)
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m.Extra = append(m.Extra, copyRRs(z.names[target][t], "")...)
		}
	}
}

// copyRRs copies rrs, setting each owner to owner unless it is empty.
func copyRRs(rrs []dns.RR, owner string) []dns.RR {
	out := make([]dns.RR, 0, len(rrs))
	for _, rr := range rrs {
		c := dns.Copy(rr)
		if owner != "" {
			c.Header().Name = owner
		}
		out = append(out, c)
	}
	return out
}

// zoneSet is an immutable list of zones, looked up by the longest matching origin.
type zoneSet struct {
	zones map[string]*Zone
}

func newZoneSet(zones []*Zone) (*zoneSet, error) {
	s := &zoneSet{zones: make(map[string]*Zone, len(zones))}
	for _, z := range zones {
		if _, dup := s.zones[z.Origin]; dup {
			return nil, fmt.Errorf("dns: zone %s is loaded twice", z.Origin)
		}
		s.zones[z.Origin] = z
	}
	return s, nil
}

// find returns the zone with the longest origin containing name.
func (s *zoneSet) find(name string) *Zone {
	if s == nil {
		return nil
	}
	for p := strings.ToLower(name); p != ""; p = parent(p) {
		if z := s.zones[p]; z != nil {
			return z
		}
	}
	return nil
}
