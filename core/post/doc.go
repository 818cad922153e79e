// Package post is the Post aggregate: the commands a client may give, the events that record
// what happened, and the rules that decide between them.
//
// The package is pure. It imports only the standard library, never reads the clock and never
// generates ids: the caller passes them in a Stamp, so every decision is reproducible in a test.
// State is rebuilt from the events alone through FromHistory; there is no other way in.
package post
