// Package console is jetinfer's web console: static HTML, CSS and
// JavaScript modules embedded in the ingest binary and served at /ui/.
//
// The console is a client of the public /v1 API and nothing else: the page
// asks for a token, keeps it in the tab's sessionStorage and sends it in the
// Authorization header of every call, so it can never do what the token may
// not. Its files need no authentication; every call does.
//
// Clients send the text it shows, so the files are served under a strict
// Content-Security-Policy (scripts and styles from the console's own origin
// only, no inline code, no framing) and the scripts render document text
// with DOM text nodes only, never as HTML. Nothing is fetched from another
// origin: the console works on a cluster without a network, and no build
// step is needed to produce it.
package console
