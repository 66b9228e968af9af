package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrRefused wraps every refusal of an endpoint URL or address.
var ErrRefused = errors.New("webhook target refused")

// MaxURLBytes bounds an endpoint URL.
const MaxURLBytes = 2048

// Targets decides which endpoints the fleet may call. The zero value allows
// only https URLs on public addresses.
type Targets struct {
	// AllowPrivate allows loopback, private (RFC 1918, fc00::/7), link-local,
	// shared (100.64.0.0/10) and other non-public addresses: for a
	// deployment whose receivers live inside its own network, and for tests.
	AllowPrivate bool
	// AllowHTTP allows plain http URLs besides https.
	AllowHTTP bool
	// Resolver resolves host names at registration; nil means
	// net.DefaultResolver.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
}

// nonPublic are the ranges, besides those netip.Addr's predicates name,
// that no public receiver can be on.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// embeddedV4 are IPv6 ranges that carry an IPv4 address a gateway forwards
// to, which must be checked as the IPv4 address it is.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// CheckAddr reports whether the fleet may connect to a, an ErrRefused
// naming the range when not. Unspecified and multicast addresses are
// refused even when private ones are allowed: no receiver listens there.
func (t Targets) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: invalid address", ErrRefused)
	case a.IsUnspecified():
		return fmt.Errorf("%w: %s is the unspecified address", ErrRefused, a)
	case a.IsMulticast():
		return fmt.Errorf("%w: %s is a multicast address", ErrRefused, a)
	}
	if t.AllowPrivate {
		return nil
	}
	if a.Is6() {
		if nat64.Contains(a) {
			b := a.As16()
			return t.CheckAddr(netip.AddrFrom4([4]byte(b[12:16])))
		}
		if sixToFour.Contains(a) {
			b := a.As16()
			return t.CheckAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	what := ""
	switch {
	case a.IsLoopback():
		what = "loopback"
	case a.IsPrivate():
		what = "private"
	case a.IsLinkLocalUnicast():
		what = "link-local"
	default:
		for _, p := range nonPublic {
			if p.Contains(a) {
				what = "non-public (" + p.String() + ")"
				break
			}
		}
	}
	if what != "" {
		return fmt.Errorf("%w: %s is a %s address; internal receivers need the deployment to allow private webhook targets", ErrRefused, a, what)
	}
	return nil
}

// ParseURL checks the form of an endpoint URL: absolute, https (or http
// when allowed), a host, no credentials or fragment, at most MaxURLBytes.
// It does not resolve the host; see CheckURL.
func (t Targets) ParseURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLBytes {
		return nil, fmt.Errorf("%w: url is %d bytes, more than %d", ErrRefused, len(raw), MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: url does not parse: %v", ErrRefused, err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && t.AllowHTTP:
	default:
		return nil, fmt.Errorf("%w: url must be https://, not %q", ErrRefused, u.Scheme+"://")
	}
	switch {
	case u.Hostname() == "":
		return nil, fmt.Errorf("%w: url has no host", ErrRefused)
	case u.User != nil:
		return nil, fmt.Errorf("%w: url must not carry credentials; verify signatures instead", ErrRefused)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("%w: url must not have a fragment", ErrRefused)
	}
	return u, nil
}

// CheckURL checks raw's form and every address its host resolves to now.
// Delivery checks the address it dials again, since a name may resolve
// elsewhere later.
func (t Targets) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := t.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return u, t.CheckAddr(a)
	}
	if !t.AllowPrivate && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
		return nil, fmt.Errorf("%w: %s is a loopback name", ErrRefused, host)
	}
	var r interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	} = net.DefaultResolver
	if t.Resolver != nil {
		r = t.Resolver
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("%w: host %s does not resolve: %v", ErrRefused, host, err)
	}
	for _, a := range addrs {
		if err := t.CheckAddr(a); err != nil {
			return nil, fmt.Errorf("host %s: %w", host, err)
		}
	}
	return u, nil
}

// dialControl refuses a connection whose remote address CheckAddr refuses.
// It runs on the address the dialer is about to connect to, after name
// resolution, so a name that resolved to a public address at registration
// cannot be pointed at an internal one later.
func (t Targets) dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: dial address %q: %v", ErrRefused, address, err)
	}
	return t.CheckAddr(ap.Addr())
}

// isRefused reports whether err is, or wraps, an address refusal (the dial
// wraps dialControl's error in *net.OpError and the client in *url.Error).
func isRefused(err error) bool { return errors.Is(err, ErrRefused) }
