// Package query holds the query side's use case: read a post, waiting, when asked, until the
// read model shows a version (read your own writes).
//
// A waiting read reads, and reads again each time its ports.ViewChanges says the view may have
// changed, until the version is there or the wait ends. How soon it hears of a change is the
// ViewChanges implementation's business: Recheck, the plain one, says "look again" at a fixed
// interval; a decorator can say it the moment a change is written.
package query
