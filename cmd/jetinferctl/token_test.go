package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
)

// A token issued without --scope may submit and read jobs, nothing more;
// other scopes are granted when asked for.
func TestTokenIssueDefaultsToJobScopes(t *testing.T) {
	secret, err := auth.GenerateHS256DevSecret()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dev.secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: "jetinfer", Audience: "jetinfer",
		DevHS256Secret: []byte(secret), Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	issue := func(extra ...string) *auth.Claims {
		t.Helper()
		var out bytes.Buffer
		args := append([]string{"token", "issue", "--hs256-secret-file", file, "--tenant", "acme"}, extra...)
		if err := run(context.Background(), args, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := issue(); c.Scope != "jobs:write jobs:read" {
		t.Errorf("default scope %q, want jobs:write jobs:read", c.Scope)
	}
	if c := issue("--scope", "jobs:read,dlq:admin"); !c.HasScope(auth.ScopeDLQAdmin) || c.HasScope(auth.ScopeJobsWrite) {
		t.Errorf("--scope jobs:read,dlq:admin gave %q", c.Scope)
	}
}

// keygen refuses to replace existing key files (every token signed with
// the old key would stop verifying) unless --force, and the private key is
// 0600 even where the file it replaces was world-readable.
func TestTokenKeygenRefusesOverwriteAndWritesPrivate0600(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.pem"), filepath.Join(dir, "k.pub.pem")
	if err := os.WriteFile(priv, []byte("old key"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"token", "keygen", "--private", priv, "--public", pub}
	err := run(context.Background(), args, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("keygen over an existing key: %v, want a refusal naming --force", err)
	}
	if b, _ := os.ReadFile(priv); string(b) != "old key" {
		t.Fatalf("the refused keygen changed the private key: %q", b)
	}
	if _, err := os.Stat(pub); !os.IsNotExist(err) {
		t.Fatalf("the refused keygen wrote the public key: %v", err)
	}
	if err := run(context.Background(), append(args, "--force"), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(priv)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(priv); !bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Errorf("private key not replaced: %q", b)
	}
	if _, err := auth.LoadSigner(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, priv); err != nil {
		t.Errorf("the new private key does not load: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
		t.Errorf("temporary files left behind: %v", m)
	}
}
