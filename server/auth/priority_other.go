//go:build !linux

package auth

import "errors"

const hashNice = 0

// lowerThreadPriority: elsewhere threads keep their priority (no portable
// per-thread niceness).
func lowerThreadPriority() {}

func threadNice() (int, error) { return 0, errors.New("thread priority is Linux only") }
