// Package streams is the JetStream adapter: the streams, buckets and
// durable consumers the binaries create or check (the topology), the
// publisher that stores events with Nats-Msg-Id, the consumer that
// delivers them to handlers with retries, dead letters and the
// max-deliveries advisory, dead-letter replay, and the lag metrics. It
// carries package events' contract and knows nothing of orders or Inbank.
package streams
