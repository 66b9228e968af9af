package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret, as the Standard Webhooks
// libraries expect: whsec_<base64 of the key>.
const SecretPrefix = "whsec_"

// secretBytes is the key length: 24 random bytes, within the 24..64 the
// specification recommends.
const secretBytes = 24

// Header names of the Standard Webhooks specification (HTTP header names
// are case-insensitive; net/http sends them canonicalized).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// NewSecret returns a fresh signing secret.
func NewSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

func secretKey(secret string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(k) == 0 {
		return nil, errors.New("webhook secret is not whsec_<base64>")
	}
	return k, nil
}

// Sign returns the v1 signature of one message: base64 of HMAC-SHA256 over
// "<id>.<unix seconds>.<body>", prefixed "v1,".
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	k, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// SetHeaders sets the webhook-id, webhook-timestamp and webhook-signature
// headers of one attempt on h, signing with every secret given (the
// current one and, during a rotation's grace, the previous one: receivers
// accept any signature that verifies).
func SetHeaders(h http.Header, id string, ts time.Time, body []byte, secrets ...string) error {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s == "" {
			continue
		}
		sig, err := Sign(s, id, ts, body)
		if err != nil {
			return err
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("webhook %s: no signing secret", id)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return nil
}
