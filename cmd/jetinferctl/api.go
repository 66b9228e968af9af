package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// apiClient talks to ingest's HTTP API with a bearer token. The backfill and
// dead-letter commands go through it, so that tenancy and scopes are
// enforced in one place, by ingest.
type apiClient struct {
	url, token, tokenFile string
	hc                    *http.Client
}

// callTimeout bounds one request/answer call; streams (results exports) are
// bounded by the command's context only.
const callTimeout = 2 * time.Minute

func (a *apiClient) register(fs *flag.FlagSet, scope string) {
	fs.StringVar(&a.url, "url", "http://127.0.0.1:8080", "ingest base URL")
	fs.StringVar(&a.token, "token", "", "bearer token with the "+scope+" scope")
	fs.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token (instead of --token)")
}

// apiError is a non-2xx answer, with the API's error code and message when
// the body is the API's JSON error.
type apiError struct {
	status     int
	code, msg  string
	body       string
	retryAfter time.Duration
}

func (e *apiError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.status, e.code, e.msg)
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, strings.TrimSpace(e.body))
}

func newAPIError(resp *http.Response, body []byte) *apiError {
	e := &apiError{status: resp.StatusCode, body: string(body)}
	var v struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil {
		e.code, e.msg = v.Error.Code, v.Error.Message
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.retryAfter = time.Duration(s) * time.Second
	}
	return e
}

// send sends one request and returns the response of a 2xx answer; any other
// answer is an *apiError. The caller closes the body.
func (a *apiClient) send(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	tok := a.token
	if tok == "" && a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return nil, errors.New("--token or --token-file is required")
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.url, "/")+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := a.hc
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, fmt.Errorf("%s %s: %w", method, path, newAPIError(resp, data))
	}
	return resp, nil
}

// do sends one request and decodes the JSON answer into out (if not nil).
// A refused documents upload still carries its counts, so out is filled
// from an error answer too when it decodes.
func (a *apiClient) do(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := a.send(ctx, method, path, contentType, body)
	if err != nil {
		var ae *apiError
		if out != nil && errors.As(err, &ae) {
			_ = json.Unmarshal([]byte(ae.body), out)
		}
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
