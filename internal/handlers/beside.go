package handlers

import "time"

// beside runs functions on goroutines that outlive them: the calculation
// made beside each session's creation would otherwise start a goroutine
// whose stack grows again through the whole HTTP client for every order
// (a tenth of the bridge's stack copying at load). A goroutine left idle
// for besideIdle ends.
type beside struct {
	work chan func()
}

const besideIdle = time.Minute

func newBeside() *beside { return &beside{work: make(chan func())} }

// run runs f on an idle goroutine, or on a new one when none is idle.
func (b *beside) run(f func()) {
	select {
	case b.work <- f:
	default:
		go b.loop(f)
	}
}

func (b *beside) loop(f func()) {
	idle := time.NewTimer(besideIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(besideIdle)
		select {
		case f = <-b.work:
		case <-idle.C:
			return
		}
	}
}
