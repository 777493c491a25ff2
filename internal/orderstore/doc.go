// Package orderstore keeps the orders' state in JetStream key-value
// buckets: one key per order (the key scheme), changed only by
// compare-and-set, with per-key TTLs for finished orders; the index of
// the orders that may still need Inbank and the reconciler's lease; and
// the migration of keys written by earlier versions.
package orderstore
