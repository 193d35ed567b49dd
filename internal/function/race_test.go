//go:build race

package function

// raceEnabled thins the long contract runs under the race detector, which
// makes them about ten times slower; the full runs go without it.
const raceEnabled = true
