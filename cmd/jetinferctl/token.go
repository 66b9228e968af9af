package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
)

// signerFlags choose the key tokens are signed with.
type signerFlags struct {
	keyFile, hs256File, issuer, audience string
}

func (s *signerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.keyFile, "key", "", "Ed25519 or RSA private key PEM file to sign with")
	fs.StringVar(&s.hs256File, "hs256-secret-file", "", "HS256 secret file to sign with (local development only)")
	fs.StringVar(&s.issuer, "issuer", "jetinfer", "token issuer (iss)")
	fs.StringVar(&s.audience, "audience", "jetinfer", "token audience (aud)")
}

func (s *signerFlags) signer() (*auth.Signer, error) {
	cfg := auth.SignerConfig{Issuer: s.issuer, Audience: s.audience}
	switch {
	case s.keyFile != "" && s.hs256File != "":
		return nil, errors.New("--key and --hs256-secret-file: give one")
	case s.keyFile != "":
		return auth.LoadSigner(cfg, s.keyFile)
	case s.hs256File != "":
		b, err := os.ReadFile(s.hs256File)
		if err != nil {
			return nil, fmt.Errorf("--hs256-secret-file: %w", err)
		}
		return auth.NewDevHS256Signer(cfg, []byte(strings.TrimSpace(string(b))))
	default:
		return nil, errors.New("--key or --hs256-secret-file is required")
	}
}

func init() {
	register(command{group: "token", name: "issue", summary: "issue a token for a tenant",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var sf signerFlags
			sf.register(fs)
			tenant := fs.String("tenant", "", "tenant id (tid claim)")
			subject := fs.String("subject", "", "subject (sub claim); defaults to the tenant")
			scope := fs.String("scope", strings.Join(auth.Scopes, " "), "space- or comma-separated scopes")
			tasks := fs.String("tasks", "", "comma-separated tasks the token may use; empty allows all")
			ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime")
			return func(ctx context.Context, e *env) error {
				s, err := sf.signer()
				if err != nil {
					return err
				}
				tok, c, err := s.IssueFor(auth.TokenRequest{Tenant: *tenant, Subject: *subject,
					Scopes: strings.Fields(strings.ReplaceAll(*scope, ",", " ")), Tasks: config.SplitList(*tasks), TTL: *ttl})
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, tok)
				fmt.Fprintf(e.stderr, "jti %s, expires %s\n", c.ID, c.ExpiresAt.Time.Format(time.RFC3339))
				return nil
			}
		}})
	register(command{group: "token", name: "keygen", summary: "write an Ed25519 key pair (PEM) for signing tokens",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			priv := fs.String("private", "jetinfer-signing.pem", "private key file to write")
			pub := fs.String("public", "jetinfer-signing.pub.pem", "public key file to write (give it to ingest)")
			return func(ctx context.Context, e *env) error {
				privPEM, pubPEM, err := auth.GenerateEd25519PEM()
				if err != nil {
					return err
				}
				if err := os.WriteFile(*priv, privPEM, 0o600); err != nil {
					return err
				}
				if err := os.WriteFile(*pub, pubPEM, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "wrote %s and %s\n", *priv, *pub)
				return nil
			}
		}})
	register(command{group: "token", name: "dev-secret", summary: "print a fresh HS256 development secret",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			return func(ctx context.Context, e *env) error {
				s, err := auth.GenerateHS256DevSecret()
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, s)
				return nil
			}
		}})
}
