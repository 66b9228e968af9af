package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr          string
		public, inner bool // allowed by default; allowed with AllowPrivate
	}{
		{"93.184.215.14", true, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true, true},
		{"127.0.0.1", false, true},
		{"127.8.9.10", false, true},
		{"::1", false, true},
		{"10.1.2.3", false, true},
		{"172.16.0.1", false, true},
		{"192.168.1.1", false, true},
		{"169.254.169.254", false, true}, // cloud metadata
		{"fe80::1", false, true},
		{"fd00::1", false, true},
		{"100.64.0.1", false, true},
		{"0.1.2.3", false, true},
		{"198.18.0.1", false, true},
		{"255.255.255.255", false, true},
		{"::ffff:127.0.0.1", false, true},  // IPv4-mapped loopback
		{"::ffff:10.0.0.1", false, true},   // IPv4-mapped private
		{"64:ff9b::a00:1", false, true},    // NAT64 of 10.0.0.1
		{"64:ff9b::5db8:d70e", true, true}, // NAT64 of a public address
		{"2002:a00:1::", false, true},      // 6to4 of 10.0.0.1
		{"2002:7f00:1::", false, true},     // 6to4 of 127.0.0.1
		{"0.0.0.0", false, false},          // unspecified: never
		{"::", false, false},               // unspecified: never
		{"224.0.0.1", false, false},        // multicast: never
		{"ff02::1", false, false},          // multicast: never
	} {
		a := netip.MustParseAddr(tc.addr)
		if err := (Targets{}).CheckAddr(a); (err == nil) != tc.public {
			t.Errorf("CheckAddr(%s) = %v, want allowed %v", a, err, tc.public)
		} else if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("CheckAddr(%s) = %v, not an ErrRefused", a, err)
		}
		if err := (Targets{AllowPrivate: true}).CheckAddr(a); (err == nil) != tc.inner {
			t.Errorf("AllowPrivate: CheckAddr(%s) = %v, want allowed %v", a, err, tc.inner)
		}
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestCheckURL(t *testing.T) {
	res := fakeResolver{
		"hooks.example.com": {netip.MustParseAddr("93.184.215.14")},
		"rebind.example":    {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.7")},
	}
	strict := Targets{Resolver: res}
	loose := Targets{Resolver: res, AllowPrivate: true, AllowHTTP: true}
	for _, tc := range []struct {
		url           string
		strict, loose bool
	}{
		{"https://hooks.example.com/jetinfer", true, true},
		{"https://hooks.example.com:8443/x?y=1", true, true},
		{"http://hooks.example.com/jetinfer", false, true},
		{"https://127.0.0.1/x", false, true},
		{"https://[::1]:9000/x", false, true},
		{"https://localhost/x", false, false}, // the fake resolver knows no localhost
		{"https://rebind.example/x", false, true},
		{"https://nowhere.example/x", false, false},
		{"ftp://hooks.example.com/x", false, false},
		{"https://user:pw@hooks.example.com/x", false, false},
		{"https://hooks.example.com/x#frag", false, false},
		{"/relative", false, false},
		{"https:///nohost", false, false},
		{"https://hooks.example.com/" + strings.Repeat("a", MaxURLBytes), false, false},
	} {
		if _, err := strict.CheckURL(context.Background(), tc.url); (err == nil) != tc.strict {
			t.Errorf("CheckURL(%q) = %v, want allowed %v", tc.url, err, tc.strict)
		}
		if _, err := loose.CheckURL(context.Background(), tc.url); (err == nil) != tc.loose {
			t.Errorf("AllowPrivate+AllowHTTP: CheckURL(%q) = %v, want allowed %v", tc.url, err, tc.loose)
		}
	}
}

// The deliverer's client checks the address it dials, whatever the URL
// said when it was registered: a loopback receiver is unreachable unless
// private targets are allowed.
func TestDeliveryDialRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	for _, allow := range []bool{false, true} {
		d := NewDeliverer(Config{Targets: Targets{AllowPrivate: allow, AllowHTTP: true}}, nil, nil, nil, nil)
		resp, err := d.client.Post(srv.URL, "application/json", strings.NewReader("{}"))
		if resp != nil {
			resp.Body.Close()
		}
		if allow && err != nil {
			t.Fatalf("AllowPrivate: %v", err)
		}
		if !allow {
			if v, _ := Judge(0, err); err == nil || v != Gone {
				t.Fatalf("dial of %s: err %v (verdict %v), want a refusal judged Gone", srv.URL, err, v)
			}
		}
	}
}
