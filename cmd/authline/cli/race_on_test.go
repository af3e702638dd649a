//go:build race

package cli

// raceEnabled: the tests run with the race detector, and so do the
// binaries they build.
const raceEnabled = true
