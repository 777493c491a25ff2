package freeport

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// TestPickIsFreeUniqueAndOutsideTheEphemeralRange: every port picked can
// be listened on, none twice (also when picked at once), and none where
// the kernel gives out ports by itself.
func TestPickIsFreeUniqueAndOutsideTheEphemeralRange(t *testing.T) {
	top := ephemeralStart()
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			p, err := Pick()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[p] {
				t.Errorf("port %d picked twice", p)
			}
			seen[p] = true
			if top-lowest >= 1000 && (p < lowest || p >= top) {
				t.Errorf("port %d outside [%d, %d)", p, lowest, top)
			}
		})
	}
	wg.Wait()
	for p := range seen {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("picked port %d cannot be listened on: %v", p, err)
			continue
		}
		l.Close()
	}
}
