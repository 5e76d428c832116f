//go:build tools

// This file pins etcd's server command in go.mod/go.sum. etcd is built
// from this same module graph (v3.5.21, the version Kubernetes 1.33 tests
// against) as its own binary: `go install go.etcd.io/etcd/server/v3@...` does
// not work because etcd's go.mod has replace directives.
package main

import (
	_ "go.etcd.io/etcd/server/v3"
)
