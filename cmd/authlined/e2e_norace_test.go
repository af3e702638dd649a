//go:build !race

package main

// e2eRace: see e2e_race_test.go.
const e2eRace = false
