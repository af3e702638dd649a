//go:build race

package main

// e2eRace is set when the tests run with -race: the binaries under test are
// then built with -race too, so a data race in them fails the test that
// meets it (the process exits 66 and prints the report).
const e2eRace = true
