//go:build race

package firstseen_test

// raceEnabled thins the crash and ordering tests under the race detector,
// which makes every request about ten times slower: scripts/test runs with
// it, and the full sweep runs without it (go test ./...).
const raceEnabled = true
