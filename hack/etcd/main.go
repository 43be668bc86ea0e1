// Command etcd is the pinned etcd server for the local control plane.
// etcd's own server/go.mod replaces its sibling modules with relative paths,
// so `go install go.etcd.io/etcd/server/v3` cannot work; this wrapper module
// requires the published server module and calls its entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
