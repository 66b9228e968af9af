package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

func ctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), err
}

// TestTenantCommands drives the tenant and revoke commands against a real
// Redis and checks each through the admission ingest runs.
func TestTenantCommands(t *testing.T) {
	r := testenv.StartRedis(t)
	url := "--redis-url=" + r.URL()
	st := tenant.NewStore(r.Client(t))
	ctx := context.Background()
	admit := func(id, jti string) tenant.Decision {
		t.Helper()
		d, err := st.Admit(ctx, id, jti, 1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	if _, err := ctl(t, "tenant", "create", url, "--tenant", "acme", "--daily-quota", "2", "--max-body-bytes", "4096", "--result-ttl", "1h", "--max-windows", "4"); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl(t, "tenant", "create", url, "--tenant", "acme"); err == nil {
		t.Fatal("second create succeeded")
	}
	if _, err := ctl(t, "tenant", "create", url, "--if-not-exists", "--tenant", "acme", "--daily-quota", "9"); err != nil {
		t.Fatalf("create --if-not-exists: %v", err)
	}
	if _, err := ctl(t, "tenant", "create", url, "--tenant", "Bad{Id}"); err == nil {
		t.Fatal("bad id accepted")
	}
	d := admit("acme", "")
	if !d.Allowed || d.Limit != 2 || d.MaxBodyBytes != 4096 || d.ResultTTL != time.Hour || d.MaxWindows != 4 {
		t.Fatalf("after create: %+v", d)
	}

	// update changes only the flags given.
	out, err := ctl(t, "tenant", "update", url, "--tenant", "acme", "--daily-quota", "100", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v tenantView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if v.DailyQuota != 100 || v.MaxBodyBytes != 4096 || v.MaxWindows != 4 || !v.Enabled {
		t.Fatalf("after update: %+v", v)
	}
	if _, err := ctl(t, "tenant", "update", url, "--tenant", "nobody", "--rate", "5"); err == nil {
		t.Fatal("update of a missing tenant succeeded")
	}

	if _, err := ctl(t, "tenant", "disable", url, "acme"); err != nil {
		t.Fatal(err)
	}
	if d := admit("acme", ""); d.Allowed || d.Reason != tenant.ReasonTenantDisabled {
		t.Fatalf("after disable: %+v", d)
	}
	if _, err := ctl(t, "tenant", "update", url, "--tenant", "acme", "--enabled=true"); err != nil {
		t.Fatal(err)
	}

	jti, err := auth.NewJTI("acme")
	if err != nil {
		t.Fatal(err)
	}
	if d := admit("acme", jti); !d.Allowed {
		t.Fatalf("before revoke: %+v", d)
	}
	if _, err := ctl(t, "token", "revoke", url, jti); err != nil {
		t.Fatal(err)
	}
	if d := admit("acme", jti); d.Allowed || d.Reason != tenant.ReasonTokenRevoked {
		t.Fatalf("after revoke: %+v", d)
	}
	if _, err := ctl(t, "token", "revoke", url, "no-tenant-in-it"); err == nil {
		t.Fatal("revoke of a jti naming no tenant succeeded without --tenant")
	}

	if _, err := ctl(t, "tenant", "create", url, "--tenant", "globex", "--disabled", "--rate", "10"); err != nil {
		t.Fatal(err)
	}
	out, err = ctl(t, "tenant", "list", url)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "acme ") || !strings.HasPrefix(lines[2], "globex ") ||
		!strings.Contains(lines[2], "false") {
		t.Fatalf("list:\n%s", out)
	}
}

// TestTenantCreateWaitsForLoadingRedis is the second `make run` after a large
// backfill: Redis answers LOADING while it reads its file back, and
// creating the dev tenant must wait for it, saying so, instead of failing.
func TestTenantCreateWaitsForLoadingRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	r.RestartLoading(2000, 300*time.Microsecond)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"tenant", "create", "--redis-url=" + r.URL(), "--tenant", "dev", "--if-not-exists"}, &out, &errOut)
	if err != nil {
		t.Fatalf("tenant create against a loading Redis: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "waiting for redis: loading its data set") {
		t.Errorf("stderr did not say why it waited: %q", errOut.String())
	}
	if !strings.Contains(out.String(), "dev") {
		t.Errorf("stdout %q does not show the tenant", out.String())
	}
}
