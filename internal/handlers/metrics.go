package handlers

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartrent-bridge/bridge/internal/order"
)

// Metrics of the workflow. A nil *Metrics records nothing.
type Metrics struct {
	transitions *prometheus.CounterVec
	publishedBy *prometheus.CounterVec
	sessions    prometheus.Counter
	activations prometheus.Counter
	byState     *prometheus.GaugeVec
	oldest      *prometheus.GaugeVec
	reconciles  *prometheus.CounterVec
	toActivated prometheus.Histogram
}

// NewMetrics registers the workflow metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		transitions: counterVec("smartrent_order_transitions_total", "Orders entering each state.", "state"),
		publishedBy: counterVec("smartrent_events_published_total", "State events published, by type.", "type"),
		sessions:    prometheus.NewCounter(prometheus.CounterOpts{Name: "smartrent_sessions_created_total", Help: "Payment sessions created at Inbank."}),
		activations: prometheus.NewCounter(prometheus.CounterOpts{Name: "smartrent_activations_called_total", Help: "Activation calls Inbank accepted."}),
		byState: gaugeVec("smartrent_orders",
			"Open orders by state, as of the last reconciliation pass; only the bridge holding the reconciler's lease reports it.", "state"),
		oldest: gaugeVec("smartrent_orders_oldest_age_seconds",
			"Age of the last change of the oldest unfinished order, by state, as of the last reconciliation pass.", "state"),
		toActivated: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartrent_session_to_activation_seconds",
			Help:    "Time from session.created to contract.activated.",
			Buckets: []float64{60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400},
		}),
		reconciles: counterVec("smartrent_reconciliations_total", "Reconciliation passes by outcome (ok, error), and orders re-read.", "outcome"),
	}
	for _, c := range []prometheus.Collector{m.transitions, m.publishedBy, m.sessions, m.activations, m.byState, m.oldest, m.reconciles, m.toActivated} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func counterVec(name, help, label string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
}

func gaugeVec(name, help, label string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{label})
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

func (m *Metrics) setStates(counts map[string]int, oldest map[string]float64) {
	if m == nil {
		return
	}
	for _, s := range []string{order.StateNew, order.StatePending, order.StateGranted, order.StateActivated, order.StateRejected, order.StateFailed, order.StateDeclined, order.StateCancelled, order.StateExpired} {
		m.byState.WithLabelValues(s).Set(float64(counts[s]))
		if !order.Final(s) {
			m.oldest.WithLabelValues(s).Set(oldest[s])
		}
	}
}

// clearStates drops the order gauges of a bridge that is not the
// reconciler now, so that only one bridge reports them.
func (m *Metrics) clearStates() {
	if m != nil {
		m.byState.Reset()
		m.oldest.Reset()
	}
}

func (m *Metrics) activated(sinceSession float64) {
	if m != nil && sinceSession >= 0 {
		m.toActivated.Observe(sinceSession)
	}
}
