package inbank

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Metrics counts outgoing Inbank requests. Labels are operation names and
// status codes, never paths or uuids. A nil *Metrics records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	circuits *prometheus.GaugeVec
}

// NewMetrics registers the client metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartrent_inbank_requests_total",
			Help: "Requests to the Inbank API by shop, operation and HTTP status code (\"error\" when no answer came).",
		}, []string{"shop", "operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smartrent_inbank_request_duration_seconds",
			Help:    "Latency of requests to the Inbank API by shop and operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"shop", "operation"}),
		circuits: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smartrent_inbank_circuit_state",
			Help: "State of each shop's Inbank circuit breaker: 0 closed, 1 half-open (probing), 2 open (calls refused locally).",
		}, []string{"shop"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.circuits} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observe(shop, op string, status int, _ error, d time.Duration) {
	if m == nil {
		return
	}
	code := "error"
	if status != 0 {
		code = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(shop, op, code).Inc()
	m.duration.WithLabelValues(shop, op).Observe(d.Seconds())
}

// circuit exports a shop's breaker state (gobreaker's numbering: closed 0,
// half-open 1, open 2).
func (m *Metrics) circuit(shop string, s gobreaker.State) {
	if m != nil {
		m.circuits.WithLabelValues(shop).Set(float64(s))
	}
}

// CircuitState is the gauge of a shop's circuit, for tests.
func (m *Metrics) CircuitState(shop string) prometheus.Gauge { return m.circuits.WithLabelValues(shop) }
