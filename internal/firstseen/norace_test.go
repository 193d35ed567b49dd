//go:build !race

package firstseen_test

const raceEnabled = false
