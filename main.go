// Command hexapost runs the hexapost command and query servers. Everything it does is in
// package bootstrap; this file only hands over the command line.
package main

import (
	"os"

	"github.com/google/uuid"

	"hexapost/bootstrap"
)

func main() {
	// Ids draw their random bits from a pool that one read of the system's generator refills
	// for 16 ids: a create takes two ids, which were otherwise two system calls. It is switched
	// on here, before any goroutine can make an id, because switching it is not safe to do
	// concurrently.
	uuid.EnableRandPool()
	os.Exit(bootstrap.Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
