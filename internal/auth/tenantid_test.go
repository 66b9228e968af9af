package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifyRefusesMalformedTenant: a correctly signed token whose tid is
// not a tenant id is refused, so that no key, label or log line is built
// from it (a colon or brace would address another tenant's Redis keys).
func TestVerifyRefusesMalformedTenant(t *testing.T) {
	k := loadKeys(t)
	edKID, _ := Thumbprint(k.edPub)
	v := newTestVerifier(t, false)
	for _, tid := range []string{"Acme", "acme:admin", "{acme}", "a.b", "-acme", "acme/..", "acme ", "é", strings.Repeat("a", 64)} {
		t.Run(tid, func(t *testing.T) {
			c := goodClaims()
			c.Tenant = tid
			_, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, c))
			if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, ErrInvalidTenant) {
				t.Fatalf("tid %q: error %v, want ErrInvalidToken and ErrInvalidTenant", tid, err)
			}
		})
	}
	for _, tid := range []string{"acme", "0", "a_b-c", strings.Repeat("a", 63)} {
		c := goodClaims()
		c.Tenant = tid
		got, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, c))
		if err != nil || got.Tenant != tid {
			t.Fatalf("tid %q refused: %v", tid, err)
		}
	}
}
