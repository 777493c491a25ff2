package inbank_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/inbank"
)

// TestTransportReusesEveryConnectionOfABurst: after a burst of inFlight
// calls at once, the next burst finds an idle connection for each of
// them and dials none (the transport used to keep 256, so every burst
// beyond that dialled the surplus again).
func TestTransportReusesEveryConnectionOfABurst(t *testing.T) {
	const inFlight = 300
	var dialled atomic.Int64
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	reset := func() {
		mu.Lock()
		defer mu.Unlock()
		arrived, all = 0, make(chan struct{})
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		arrived++
		wait := all
		if arrived == inFlight {
			close(all) // the whole burst is in flight at once
		}
		mu.Unlock()
		<-wait
		io.WriteString(w, "{}")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client := &http.Client{Transport: inbank.Transport(inFlight), Timeout: 30 * time.Second}
	burst := func() {
		var wg sync.WaitGroup
		for range inFlight {
			wg.Go(func() {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		wg.Wait()
	}
	burst()
	first := dialled.Load()
	reset()
	burst()
	if again := dialled.Load() - first; first != inFlight || again != 0 {
		t.Errorf("connections dialled: %d for the first burst of %d, %d for the second; want %d and 0", first, inFlight, again, inFlight)
	}
}
