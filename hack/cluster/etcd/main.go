// etcd for the test ground: the upstream server's main, built as a module
// because no release binary may be downloaded here.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
