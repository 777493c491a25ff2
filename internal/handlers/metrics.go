package handlers

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the workflow. A nil *Metrics records nothing.
type Metrics struct {
	transitions *prometheus.CounterVec
	publishedBy *prometheus.CounterVec
	sessions    prometheus.Counter
	activations prometheus.Counter
	byState     *prometheus.GaugeVec
	reconciles  *prometheus.CounterVec
}

// NewMetrics registers the workflow metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartrent_order_transitions_total",
			Help: "Orders entering each state.",
		}, []string{"state"}),
		publishedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartrent_events_published_total",
			Help: "State events published, by type.",
		}, []string{"type"}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartrent_sessions_created_total",
			Help: "Payment sessions created at Inbank.",
		}),
		activations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartrent_activations_called_total",
			Help: "Activation calls Inbank accepted.",
		}),
		byState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smartrent_orders",
			Help: "Orders by state, as of the last reconciliation pass.",
		}, []string{"state"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartrent_reconciliations_total",
			Help: "Reconciliation passes by outcome (ok, error), and orders re-read.",
		}, []string{"outcome"}),
	}
	for _, c := range []prometheus.Collector{m.transitions, m.publishedBy, m.sessions, m.activations, m.byState, m.reconciles} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) state(s string) {
	if m != nil {
		m.transitions.WithLabelValues(s).Inc()
	}
}

func (m *Metrics) published(t string) {
	if m != nil {
		m.publishedBy.WithLabelValues(t).Inc()
	}
}

func (m *Metrics) sessionCreated() {
	if m != nil {
		m.sessions.Inc()
	}
}

func (m *Metrics) activationCalled() {
	if m != nil {
		m.activations.Inc()
	}
}

func (m *Metrics) reconciled(outcome string, n int) {
	if m != nil {
		m.reconciles.WithLabelValues(outcome).Add(float64(n))
	}
}

func (m *Metrics) setStates(counts map[string]int) {
	if m == nil {
		return
	}
	for _, s := range []string{StateNew, StatePending, StateGranted, StateActivated, StateRejected, StateFailed, StateDeclined, StateCancelled, StateExpired} {
		m.byState.WithLabelValues(s).Set(float64(counts[s]))
	}
}
