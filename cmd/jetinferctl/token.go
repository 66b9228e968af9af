package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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

// defaultIssueScope is what `token issue` grants unless --scope asks for
// more: submitting and reading jobs. Backfills and DLQ administration are
// granted only on request, so that a token handed to an application cannot
// replay dead letters or run backfills by accident.
var defaultIssueScope = auth.ScopeJobsWrite + " " + auth.ScopeJobsRead

// writeKeyFile writes a key through a temporary file in the same directory
// renamed over path, so that the file has exactly mode whatever an old file
// at path had (os.WriteFile keeps an existing file's mode) and no reader
// ever sees half a key.
func writeKeyFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func init() {
	register(command{group: "token", name: "issue", summary: "issue a token for a tenant",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var sf signerFlags
			sf.register(fs)
			tenant := fs.String("tenant", "", "tenant id (tid claim)")
			subject := fs.String("subject", "", "subject (sub claim); defaults to the tenant")
			scope := fs.String("scope", defaultIssueScope, "space- or comma-separated scopes (any of: "+strings.Join(auth.Scopes, " ")+")")
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
			force := fs.Bool("force", false, "replace existing key files (tokens signed with the old key stop verifying)")
			return func(ctx context.Context, e *env) error {
				if !*force {
					for _, f := range []string{*priv, *pub} {
						if _, err := os.Lstat(f); err == nil {
							return fmt.Errorf("%s exists; replacing it invalidates every token signed with it: move it away or pass --force", f)
						} else if !errors.Is(err, os.ErrNotExist) {
							return err
						}
					}
				}
				privPEM, pubPEM, err := auth.GenerateEd25519PEM()
				if err != nil {
					return err
				}
				if err := writeKeyFile(*priv, privPEM, 0o600); err != nil {
					return err
				}
				if err := writeKeyFile(*pub, pubPEM, 0o644); err != nil {
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
