package inbanktest

import (
	"math/rand/v2"
	"net/http"
	"strconv"
)

// AllOperations as the operation of [Fake.SetFault] applies to every call.
const AllOperations = "*"

// Fault is injected into calls of one operation.
type Fault struct {
	// Latency delays every call.
	Latency Duration `json:"latency"`
	// Status, when non-zero, is answered instead of the real answer
	// (e.g. 500, 502, 503, 429) with a documented error body.
	Status int `json:"status"`
	// Timeout makes failing calls hang until the client gives up.
	Timeout bool `json:"timeout"`
	// Rate is the share of calls that fail (0 or 1 = every call).
	Rate float64 `json:"rate"`
	// Remaining, when > 0, limits the fault to that many failing calls.
	Remaining int `json:"remaining"`
	// RetryAfter is sent with 429 and 503 answers, in seconds.
	RetryAfterSeconds int `json:"retryAfterSeconds"`
	// AfterEffect lets the call take effect, then fails its answer: the
	// caller cannot know that the side effect happened.
	AfterEffect bool `json:"afterEffect"`

	fails bool
}

// SetFault injects fault into calls of op (an inbank.Op* name or
// [AllOperations]), replacing any fault set for op before.
func (f *Fake) SetFault(op string, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[op] = &fault
}

// ClearFaults removes every injected fault.
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = map[string]*Fault{}
}

// takeFault decides what happens to one call of op. f.mu is held.
func (f *Fake) takeFault(op string) Fault {
	var out Fault
	for _, key := range []string{AllOperations, op} {
		ft := f.faults[key]
		if ft == nil {
			continue
		}
		if ft.Latency > out.Latency {
			out.Latency = ft.Latency
		}
		if ft.Status == 0 && !ft.Timeout {
			continue
		}
		if ft.Rate > 0 && ft.Rate < 1 && rand.Float64() >= ft.Rate {
			continue
		}
		out.fails, out.Status, out.Timeout = true, ft.Status, ft.Timeout
		out.RetryAfterSeconds, out.AfterEffect = ft.RetryAfterSeconds, ft.AfterEffect
		if ft.Remaining > 0 {
			ft.Remaining--
			if ft.Remaining == 0 {
				delete(f.faults, key)
			}
		}
	}
	return out
}

func (ft Fault) respond(w http.ResponseWriter, r *http.Request) {
	if ft.Timeout {
		<-r.Context().Done()
		return
	}
	if ft.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ft.RetryAfterSeconds))
	}
	msg := map[int]string{
		http.StatusTooManyRequests:     "too_many_requests",
		http.StatusInternalServerError: "internal_server_error",
		http.StatusBadGateway:          "bad_gateway",
		http.StatusServiceUnavailable:  "service_unavailable",
		http.StatusGatewayTimeout:      "gateway_timeout",
	}[ft.Status]
	if msg == "" {
		msg = "injected_fault"
	}
	writeJSON(w, ft.Status, map[string]string{"message": msg})
}
