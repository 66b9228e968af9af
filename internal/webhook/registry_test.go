package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/testenv"
	"github.com/jetinfer/jetinfer/internal/webhook"
)

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	reg := webhook.NewRegistry(testenv.RedisClient(t), webhook.Targets{})
	const url = "https://93.184.215.14/hook"

	ep, err := reg.Register(ctx, "acme", url, "results")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.ID, "ep_") || !strings.HasPrefix(ep.Secret, webhook.SecretPrefix) {
		t.Fatalf("registered %+v", ep)
	}
	if _, err := reg.Register(ctx, "acme", url, ""); !errors.Is(err, webhook.ErrExists) {
		t.Fatalf("same URL again: %v", err)
	}
	if _, err := reg.Register(ctx, "acme", "https://127.0.0.1/hook", ""); !errors.Is(err, webhook.ErrRefused) {
		t.Fatalf("loopback without AllowPrivate: %v", err)
	}

	// Resolution is per tenant: another tenant's URL names nothing.
	if id, err := reg.Resolve(ctx, "acme", url); err != nil || id != ep.ID {
		t.Fatalf("Resolve = %q, %v", id, err)
	}
	if _, err := reg.Resolve(ctx, "globex", url); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("another tenant resolved acme's URL: %v", err)
	}
	if _, err := reg.Get(ctx, "globex", ep.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("another tenant read acme's endpoint: %v", err)
	}
	if err := reg.Delete(ctx, "globex", ep.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("another tenant deleted acme's endpoint: %v", err)
	}

	// Rotation: a new secret, the old one kept for the grace period.
	rot, err := reg.Rotate(ctx, "acme", ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Secret == ep.Secret || rot.PrevSecret != ep.Secret || rot.PrevUntil.IsZero() {
		t.Fatalf("rotated %+v from %+v", rot, ep)
	}
	got, err := reg.Get(ctx, "acme", ep.ID)
	if err != nil || got.Secret != rot.Secret || len(got.Secrets(rot.Created)) != 2 {
		t.Fatalf("after rotation Get = %+v, %v", got, err)
	}

	// Listing hides secrets.
	list, err := reg.List(ctx, "acme")
	if err != nil || len(list) != 1 || list[0].Secret != "" || list[0].PrevSecret != "" || list[0].URL != url {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// The limit, then room again after a delete; a deleted URL resolves to nothing.
	for i := 1; i < webhook.MaxEndpoints; i++ {
		if _, err := reg.Register(ctx, "acme", fmt.Sprintf("https://93.184.215.14/hook/%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.Register(ctx, "acme", "https://93.184.215.14/one-too-many", ""); !errors.Is(err, webhook.ErrLimit) {
		t.Fatalf("endpoint %d: %v", webhook.MaxEndpoints+1, err)
	}
	if err := reg.Delete(ctx, "acme", ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Resolve(ctx, "acme", url); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("deleted URL resolved: %v", err)
	}
	if _, err := reg.Register(ctx, "acme", url, ""); err != nil {
		t.Fatalf("re-registering after a delete: %v", err)
	}
	if _, err := reg.Get(ctx, "acme", "ep_../../x"); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("malformed id: %v", err)
	}
}
