package dns

import (
	"strings"

	"github.com/alkdev/alknet/core"
	"github.com/miekg/dns"
)

// update applies an RFC 2136 dynamic update, as decoded from the wire (empty RDATA is
// told by RDLENGTH 0). Only DoQ and DoT clients whose TLS
// identity holds the scope "dns:update" may update; everyone else is REFUSED. Updates
// live in memory: a reload from the zone files discards them.
func (s *Server) update(req, resp *dns.Msg, info Info) *dns.Msg {
	remote := "-"
	if info.Peer.RemoteAddr != nil {
		remote = info.Peer.RemoteAddr.String()
	}
	if (info.Transport != "doq" && info.Transport != "dot") || !info.Peer.Allows(core.ScopeDNSUpdate) {
		core.LogAuth(s.log, core.AuthRejected, remote, core.Fingerprint(info.Peer.PublicKey), info.Peer.Name(), "dns:update", info.Transport)
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	if len(req.Question) != 1 || req.Question[0].Qtype != dns.TypeSOA {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	origin := strings.ToLower(dns.Fqdn(req.Question[0].Name))
	s.upd.Lock()
	defer s.upd.Unlock()
	zs := s.zones.Load()
	z := zs.zones[origin]
	if z == nil {
		resp.Rcode = dns.RcodeNotAuth
		return resp
	}
	if rc := z.checkPrereqs(req.Answer); rc != dns.RcodeSuccess {
		resp.Rcode = rc
		return resp
	}
	if rc := z.prescan(req.Ns); rc != dns.RcodeSuccess {
		resp.Rcode = rc
		return resp
	}
	nz := z.clone()
	if nz.apply(req.Ns) {
		nz.soa.Serial++
		nz.index()
		next := &zoneSet{zones: make(map[string]*Zone, len(zs.zones))}
		for k, v := range zs.zones {
			next.zones[k] = v
		}
		next.zones[origin] = nz
		s.zones.Store(next)
		s.log.Info("dns update applied", "zone", origin, "peer", info.Peer.Name(), "changes", len(req.Ns), "serial", nz.soa.Serial)
	}
	return resp
}

// checkPrereqs evaluates the prerequisite section (RFC 2136 section 3.2).
func (z *Zone) checkPrereqs(rrs []dns.RR) int {
	want := make(map[string]map[uint16][]dns.RR) // value-dependent RRsets
	for _, rr := range rrs {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if h.Ttl != 0 {
			return dns.RcodeFormatError
		}
		if !dns.IsSubDomain(z.Origin, name) {
			return dns.RcodeNotZone
		}
		switch h.Class {
		case dns.ClassANY:
			if rr.Header().Rdlength != 0 {
				return dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				if _, ok := z.names[name]; !ok {
					return dns.RcodeNameError
				}
			} else if len(z.names[name][h.Rrtype]) == 0 {
				return dns.RcodeNXRrset
			}
		case dns.ClassNONE:
			if rr.Header().Rdlength != 0 {
				return dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				if _, ok := z.names[name]; ok {
					return dns.RcodeYXDomain
				}
			} else if len(z.names[name][h.Rrtype]) > 0 {
				return dns.RcodeYXRrset
			}
		case dns.ClassINET:
			if want[name] == nil {
				want[name] = make(map[uint16][]dns.RR)
			}
			want[name][h.Rrtype] = append(want[name][h.Rrtype], rr)
		default:
			return dns.RcodeFormatError
		}
	}
	for name, byType := range want {
		for t, set := range byType {
			if !sameRRset(set, z.names[name][t]) {
				return dns.RcodeNXRrset
			}
		}
	}
	return dns.RcodeSuccess
}

func sameRRset(a, b []dns.RR) bool {
	contains := func(set []dns.RR, rr dns.RR) bool {
		for _, x := range set {
			if dns.IsDuplicate(x, rr) {
				return true
			}
		}
		return false
	}
	for _, rr := range a {
		if !contains(b, rr) {
			return false
		}
	}
	for _, rr := range b {
		if !contains(a, rr) {
			return false
		}
	}
	return true
}

// prescan checks the update section before anything changes (RFC 2136 section 3.4.1).
func (z *Zone) prescan(rrs []dns.RR) int {
	for _, rr := range rrs {
		h := rr.Header()
		if !dns.IsSubDomain(z.Origin, strings.ToLower(h.Name)) {
			return dns.RcodeNotZone
		}
		switch h.Class {
		case dns.ClassINET:
			switch h.Rrtype {
			case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT:
				return dns.RcodeFormatError
			}
			if rr.Header().Rdlength == 0 {
				return dns.RcodeFormatError
			}
		case dns.ClassANY:
			if h.Ttl != 0 {
				return dns.RcodeFormatError
			}
			if rr.Header().Rdlength != 0 {
				return dns.RcodeFormatError
			}
		case dns.ClassNONE:
			if h.Ttl != 0 || h.Rrtype == dns.TypeANY {
				return dns.RcodeFormatError
			}
		default:
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

// clone copies the zone's index; records themselves are shared and never changed.
func (z *Zone) clone() *Zone {
	nz := &Zone{Origin: z.Origin, File: z.File, names: make(map[string]map[uint16][]dns.RR, len(z.names))}
	for name, byType := range z.names {
		m := make(map[uint16][]dns.RR, len(byType))
		for t, rrs := range byType {
			m[t] = append([]dns.RR(nil), rrs...)
		}
		nz.names[name] = m
	}
	nz.soa = dns.Copy(z.soa).(*dns.SOA)
	nz.names[z.Origin][dns.TypeSOA] = []dns.RR{nz.soa}
	return nz
}

// apply performs the update section on a cloned zone and reports whether anything
// changed (RFC 2136 section 3.4.2).
func (z *Zone) apply(rrs []dns.RR) bool {
	changed := false
	for _, rr := range rrs {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		byType := z.names[name]
		switch h.Class {
		case dns.ClassINET:
			if byType == nil {
				byType = make(map[uint16][]dns.RR)
				z.names[name] = byType
			}
			if h.Rrtype == dns.TypeSOA {
				if soa := rr.(*dns.SOA); name == z.Origin && soa.Serial > z.soa.Serial {
					z.soa = dns.Copy(soa).(*dns.SOA)
					byType[dns.TypeSOA] = []dns.RR{z.soa}
					z.soa.Serial-- // the caller bumps it once for the whole update
					changed = true
				}
				continue
			}
			// A CNAME and other data cannot share a name.
			if h.Rrtype == dns.TypeCNAME && hasOtherThan(byType, dns.TypeCNAME) ||
				h.Rrtype != dns.TypeCNAME && len(byType[dns.TypeCNAME]) > 0 {
				continue
			}
			if h.Rrtype == dns.TypeCNAME {
				byType[dns.TypeCNAME] = nil
			}
			c := dns.Copy(rr)
			set := byType[h.Rrtype]
			replaced := false
			for i, old := range set {
				if dns.IsDuplicate(old, c) {
					set[i], replaced = c, true
				}
			}
			if !replaced {
				set = append(set, c)
			}
			byType[h.Rrtype] = set
			changed = true
		case dns.ClassANY:
			if byType == nil {
				continue
			}
			for t := range byType {
				if (h.Rrtype == dns.TypeANY || h.Rrtype == t) && !(name == z.Origin && (t == dns.TypeSOA || t == dns.TypeNS)) {
					delete(byType, t)
					changed = true
				}
			}
		case dns.ClassNONE:
			if byType == nil || h.Rrtype == dns.TypeSOA {
				continue
			}
			set := byType[h.Rrtype]
			if name == z.Origin && h.Rrtype == dns.TypeNS && len(set) <= 1 {
				continue
			}
			probe := dns.Copy(rr)
			probe.Header().Class = dns.ClassINET
			kept := set[:0:0]
			for _, old := range set {
				if dns.IsDuplicate(old, probe) {
					changed = true
					continue
				}
				kept = append(kept, old)
			}
			byType[h.Rrtype] = kept
		}
		for t, set := range byType {
			if len(set) == 0 {
				delete(byType, t)
			}
		}
		if len(byType) == 0 {
			delete(z.names, name)
		}
	}
	return changed
}

func hasOtherThan(byType map[uint16][]dns.RR, t uint16) bool {
	for k, v := range byType {
		if k != t && len(v) > 0 {
			return true
		}
	}
	return false
}
