// Package chart renders the Helm chart in deploy/helm/jetinfer with
// Helm's own engine (no cluster, no helm binary) and checks what it
// renders: Helm's lint passes, every object decodes strictly into its
// Kubernetes type, and the objects match deploy/k8s's names, ports, KEDA
// consumers and configuration keys, with the alerting rules of
// deploy/prometheus/alerts.yml. It is a module of its own so that Helm's
// dependencies stay out of jetinfer's go.mod; `make test` runs it.
package chart
