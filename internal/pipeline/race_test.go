//go:build race

package pipeline

// raceEnabled skips the heap measurement under the race detector, which
// makes it about ten times slower and changes what is allocated.
const raceEnabled = true
