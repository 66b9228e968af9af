package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// webhookEndpoint mirrors the API's WebhookEndpoint.
type webhookEndpoint struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Description string    `json:"description,omitempty"`
	Secret      string    `json:"secret,omitempty"`
	PrevSecret  string    `json:"prev_secret,omitempty"`
	PrevUntil   time.Time `json:"prev_until,omitzero"`
	Created     time.Time `json:"created_at"`
}

// printSecret shows a freshly made secret, which the API never shows again.
func printSecret(e *env, ep webhookEndpoint) {
	fmt.Fprintf(e.stdout, "%s %s\n", ep.ID, ep.URL)
	fmt.Fprintf(e.stdout, "secret: %s\n", ep.Secret)
	if ep.PrevSecret != "" {
		fmt.Fprintf(e.stdout, "the previous secret also signs deliveries until %s\n", ep.PrevUntil.Format(time.RFC3339))
	}
	fmt.Fprintln(e.stderr, "keep the secret: it is shown only now (rotate to get a new one)")
}

func init() {
	register(command{group: "webhook", name: "register", summary: "register a webhook endpoint and print its signing secret (through ingest)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "webhooks:admin")
			desc := fs.String("description", "", "a note on the endpoint")
			asJSON := fs.Bool("json", false, "print the API's JSON")
			return func(ctx context.Context, e *env) error {
				if len(e.args) != 1 {
					return errors.New("usage: jetinferctl webhook register [flags] <https endpoint URL>")
				}
				body, _ := json.Marshal(map[string]string{"url": e.args[0], "description": *desc})
				var ep webhookEndpoint
				if err := a.do(ctx, http.MethodPost, "/v1/webhooks", "application/json", strings.NewReader(string(body)), &ep); err != nil {
					return err
				}
				if *asJSON {
					return json.NewEncoder(e.stdout).Encode(ep)
				}
				printSecret(e, ep)
				return nil
			}
		}})
	register(command{group: "webhook", name: "list", summary: "list the tenant's webhook endpoints (through ingest)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "webhooks:admin")
			asJSON := fs.Bool("json", false, "print the API's JSON")
			return func(ctx context.Context, e *env) error {
				var list struct {
					Endpoints []webhookEndpoint `json:"endpoints"`
				}
				if err := a.do(ctx, http.MethodGet, "/v1/webhooks", "", nil, &list); err != nil {
					return err
				}
				if *asJSON {
					return json.NewEncoder(e.stdout).Encode(list)
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tURL\tCREATED\tDESCRIPTION")
				for _, ep := range list.Endpoints {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ep.ID, ep.URL, ep.Created.Format(time.RFC3339), ep.Description)
				}
				return tw.Flush()
			}
		}})
	register(command{group: "webhook", name: "rotate", summary: "give a webhook endpoint a new signing secret (through ingest)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "webhooks:admin")
			return func(ctx context.Context, e *env) error {
				if len(e.args) != 1 {
					return errors.New("usage: jetinferctl webhook rotate [flags] <endpoint id>")
				}
				var ep webhookEndpoint
				if err := a.do(ctx, http.MethodPost, "/v1/webhooks/"+url.PathEscape(e.args[0])+"/rotate", "", nil, &ep); err != nil {
					return err
				}
				printSecret(e, ep)
				return nil
			}
		}})
	register(command{group: "webhook", name: "delete", summary: "delete webhook endpoints by id (through ingest)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "webhooks:admin")
			return func(ctx context.Context, e *env) error {
				return eachID(e, "usage: jetinferctl webhook delete [flags] <endpoint id> [<endpoint id> ...]", func(id string) (string, error) {
					err := a.do(ctx, http.MethodDelete, "/v1/webhooks/"+url.PathEscape(id), "", nil, nil)
					return id + " deleted", err
				})
			}
		}})
}
