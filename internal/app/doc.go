// Package app wires jetinfer's parts into the processes that cmd/ingest and
// cmd/worker run: it is their composition root, kept out of package main so
// that end-to-end tests run the same wiring in-process.
package app
