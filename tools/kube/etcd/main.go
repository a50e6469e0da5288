// Command etcd is etcd's own entry point (go.etcd.io/etcd/server/v3/etcdmain) at the version
// k8s.io/kubernetes requires, so that the API server and its store are built and tested together.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
