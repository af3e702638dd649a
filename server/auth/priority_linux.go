package auth

import "syscall"

// hashNice is the niceness of hashing threads: the lowest priority.
const hashNice = 19

// lowerThreadPriority sets the calling OS thread's niceness to hashNice.
// On Linux, setpriority with a thread id applies to that thread only.
// Raising one's own niceness needs no privilege; a failure leaves the
// thread at normal priority, which is slower for GETs but still correct.
func lowerThreadPriority() {
	syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), hashNice)
}

// threadNice returns the calling thread's niceness (for tests). The raw
// getpriority system call returns 20 - nice.
func threadNice() (int, error) {
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	return 20 - p, err
}
