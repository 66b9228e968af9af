package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jetinfer/jetinfer/internal/config"
)

// openAudit opens the audit log's stream: nil for off, standard error, or
// a file appended to (created 0600: it names tenants and clients). The
// returned close ends it.
func openAudit(dst string) (*slog.Logger, func() error, error) {
	var w io.Writer
	closer := func() error { return nil }
	switch dst {
	case config.AuditLogOff:
		return nil, closer, nil
	case config.AuditLogStderr:
		w = os.Stderr
	default:
		f, err := os.OpenFile(dst, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("audit-log: %w", err)
		}
		w, closer = f, f.Close
	}
	return slog.New(slog.NewJSONHandler(w, nil)), closer, nil
}

// certReloader serves the certificate of a pair of PEM files, read again
// when either file changes (a renewal by cert-manager, certbot or a
// mounted secret), with no restart. A pair that fails to load (caught
// between the writes of its two files, or broken) leaves the last good
// certificate in service; it is tried again once a file changes again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp [2]fileStamp // of the pair last tried
}

// fileStamp tells a file's versions apart without reading it.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// newCertReloader loads the pair once, so that a bad pair stops the start.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := c.GetCertificate(nil); err != nil {
		return nil, fmt.Errorf("tls-cert-file: %w", err)
	}
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate: two stats per handshake,
// and a load only when a file changed.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cs, cerr := stampOf(c.certFile)
	ks, kerr := stampOf(c.keyFile)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cerr != nil || kerr != nil || [2]fileStamp{cs, ks} == c.stamp {
		if c.cert == nil {
			return nil, fmt.Errorf("no certificate: %w", errors.Join(cerr, kerr))
		}
		return c.cert, nil
	}
	c.stamp = [2]fileStamp{cs, ks}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert == nil {
			return nil, err
		}
		c.log.Warn("TLS certificate not reloaded; the previous one stays in service", slog.String("cert_file", c.certFile), slog.Any("error", err))
		return c.cert, nil
	}
	if c.cert != nil {
		c.log.Info("TLS certificate reloaded", slog.String("cert_file", c.certFile))
	}
	c.cert = &cert
	return c.cert, nil
}

// tlsConfig is the API listener's TLS: 1.2 at least, the certificate from
// reload. http.Server.ServeTLS adds HTTP/2 to what it negotiates.
func tlsConfig(reload *certReloader) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: reload.GetCertificate}
}
