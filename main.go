// Command hexapost runs the hexapost command and query servers. Everything it does is in
// package bootstrap; this file only hands over the command line.
package main

import (
	"os"

	"hexapost/bootstrap"
)

func main() {
	os.Exit(bootstrap.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
