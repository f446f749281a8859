//go:build race

package session

// raceEnabled reports whether the race detector is on; it changes
// allocation counts.
const raceEnabled = true
