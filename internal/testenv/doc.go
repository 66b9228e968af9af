// Package testenv starts the real dependencies jetinfer's tests run against:
// an embedded nats-server with JetStream on a random port and a temporary store,
// a redis-server on a free port (or, from Debian's redis-server too, a
// 3-master Redis Cluster, or a master with a replica and three sentinels), and the ONNX Runtime library and model
// directories that `make deps models` builds. It is for tests only.
package testenv
