package webhook

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks reference libraries.
func TestSignKnownVector(t *testing.T) {
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestSetHeadersSignsWithEverySecret(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if !strings.HasPrefix(a, SecretPrefix) || a == b {
		t.Fatalf("secrets %q %q", a, b)
	}
	h := http.Header{}
	ts := time.Unix(1700000000, 0)
	if err := SetHeaders(h, "msg_1", ts, []byte("{}"), a, b); err != nil {
		t.Fatal(err)
	}
	sa, _ := Sign(a, "msg_1", ts, []byte("{}"))
	sb, _ := Sign(b, "msg_1", ts, []byte("{}"))
	if got := h.Values(HeaderSignature); len(got) != 1 || got[0] != sa+" "+sb {
		t.Fatalf("signature header %q, want %q", got, sa+" "+sb)
	}
	if h.Get(HeaderID) != "msg_1" || h.Get(HeaderTimestamp) != "1700000000" {
		t.Fatalf("headers %v", h)
	}
	if err := SetHeaders(http.Header{}, "msg_1", ts, nil, "whsec_!!"); err == nil {
		t.Fatal("a malformed secret signed")
	}
}

func TestEndpointSecretsDuringRotationGrace(t *testing.T) {
	now := time.Now()
	e := Endpoint{Secret: "new", PrevSecret: "old", PrevUntil: now.Add(time.Hour)}
	if got := e.Secrets(now); len(got) != 2 {
		t.Fatalf("within grace: %v", got)
	}
	if got := e.Secrets(now.Add(2 * time.Hour)); len(got) != 1 || got[0] != "new" {
		t.Fatalf("after grace: %v", got)
	}
}
