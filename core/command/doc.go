// Package command holds the write side's use cases: load a post's stream, let the aggregate
// decide, append the result with the expected version, and relay appended changes to the bus.
//
// It talks to infrastructure only through ports, so the same code runs on the in-memory store
// and on MySQL.
package command
