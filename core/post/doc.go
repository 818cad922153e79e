// Package post is the Post aggregate: the commands a client may give, the events that record
// what happened, and the rules that decide between them.
//
// The package is pure. It imports only the standard library, never reads the clock and never
// generates ids: the caller passes them in a Stamp, so every decision is reproducible in a test.
// A Post is rebuilt from its events through FromHistory, or from a snapshot of a state it had
// through FromState with the events that followed applied; there is no other way in.
package post
