//go:build race

package pipeline

// raceEnabled shrinks the heap test under the race detector, which makes
// it about ten times slower.
const raceEnabled = true
