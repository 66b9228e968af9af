package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
)

// The webhook commands against the real ingest: register prints a secret
// once, list shows none, rotate prints a new one, delete removes it.
func TestWebhookCommands(t *testing.T) {
	s := startStackWith(t, func(ing *config.Ingest, _ *config.Worker) {
		ing.Webhooks.AllowPrivate, ing.Webhooks.AllowHTTP = true, true
	}, nil)
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := signer.IssueFor(auth.TokenRequest{Tenant: "acme", Scopes: []string{auth.ScopeWebhooksAdmin}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctl := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append(args[:2:2], append([]string{"--url", s.url, "--token", tok}, args[2:]...)...), &out, &errOut)
		return out.String(), err
	}
	out, err := ctl("webhook", "register", "--description", "results", "http://127.0.0.1:9/hook")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(out)
	if len(fields) < 4 || !strings.HasPrefix(fields[0], "ep_") || !strings.HasPrefix(fields[3], "whsec_") {
		t.Fatalf("register printed %q", out)
	}
	id, secret := fields[0], fields[3]
	if _, err := ctl("webhook", "register", "http://127.0.0.1:9/hook"); err == nil || !strings.Contains(err.Error(), "webhook_exists") {
		t.Fatalf("registering the URL again: %v", err)
	}
	out, err = ctl("webhook", "list")
	if err != nil || !strings.Contains(out, id) || strings.Contains(out, "whsec_") {
		t.Fatalf("list: %v %q", err, out)
	}
	out, err = ctl("webhook", "rotate", id)
	if err != nil || !strings.Contains(out, "whsec_") {
		t.Fatalf("rotate: %v %q", err, out)
	}
	if strings.Fields(out)[3] == secret {
		t.Fatalf("rotate kept the secret: %q", out)
	}
	if out, err = ctl("webhook", "delete", id); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %v %q", err, out)
	}
	if _, err := ctl("webhook", "delete", id); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("deleting twice: %v", err)
	}
}
