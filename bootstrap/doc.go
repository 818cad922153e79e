// Package bootstrap turns configuration into a running process: it reads the environment,
// picks one adapter per port with one fx.Option per flag, starts the servers, the relay and the
// projector in order and stops them gracefully. It is the only package that knows fx, and
// nothing imports it but main.
package bootstrap
