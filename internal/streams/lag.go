package streams

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// LagCollector exports, at each scrape, what JetStream says of the
// bridge's consumers (messages not yet delivered, delivered but not acked,
// redelivered) and the depth of the dead-letter stream, so dashboards and
// alerts need no NATS exporter.
type LagCollector struct {
	js        jetstream.JetStream
	consumers []DurableConsumer
	pending   *prometheus.Desc
	ackPend   *prometheus.Desc
	redeliv   *prometheus.Desc
	dlq       *prometheus.Desc
	up        *prometheus.Desc
}

// NewLagCollector describes the bridge's consumers.
func NewLagCollector(js jetstream.JetStream, consumers []DurableConsumer) *LagCollector {
	l := []string{"consumer"}
	return &LagCollector{
		js: js, consumers: consumers,
		pending: prometheus.NewDesc("smartrent_consumer_pending_messages", "Messages in the consumer's stream not yet delivered to it.", l, nil),
		ackPend: prometheus.NewDesc("smartrent_consumer_ack_pending_messages", "Messages delivered to the consumer and not yet acknowledged.", l, nil),
		redeliv: prometheus.NewDesc("smartrent_consumer_redelivered_messages", "Messages delivered more than once and not yet acknowledged.", l, nil),
		dlq:     prometheus.NewDesc("smartrent_dlq_messages", "Messages in SMARTRENT_DLQ.", nil, nil),
		up:      prometheus.NewDesc("smartrent_jetstream_up", "1 if JetStream answered the last scrape's questions.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.ackPend, c.redeliv, c.dlq, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	up := 1.0
	for _, dc := range c.consumers {
		name := dc.Durable
		cons, err := c.js.Consumer(ctx, dc.Stream, name)
		if err != nil {
			up = 0
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			up = 0
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), name)
		ch <- prometheus.MustNewConstMetric(c.ackPend, prometheus.GaugeValue, float64(info.NumAckPending), name)
		ch <- prometheus.MustNewConstMetric(c.redeliv, prometheus.GaugeValue, float64(info.NumRedelivered), name)
	}
	if s, err := c.js.Stream(ctx, StreamDLQ); err == nil {
		if info, err := s.Info(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(c.dlq, prometheus.GaugeValue, float64(info.State.Msgs))
		} else {
			up = 0
		}
	} else {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
}
