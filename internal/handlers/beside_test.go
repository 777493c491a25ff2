package handlers

import (
	"sync"
	"testing"
	"time"
)

// TestBesideNeverWaitsForAFreeGoroutine: run starts every function at
// once, however many are still running, and reuses goroutines that are
// done.
func TestBesideNeverWaitsForAFreeGoroutine(t *testing.T) {
	b := newBeside()
	const n = 50
	release := make(chan struct{})
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	for range n {
		b.run(func() {
			started.Done()
			<-release
			finished.Done()
		})
	}
	allStarted := make(chan struct{})
	go func() { started.Wait(); close(allStarted) }()
	select {
	case <-allStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("not every function started while the others ran")
	}
	close(release)
	finished.Wait()
	done := make(chan struct{})
	for range 3 * n { // on the goroutines left idle
		b.run(func() { done <- struct{}{} })
		<-done
	}
}
