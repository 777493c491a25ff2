// Package handlers holds the consumers' handlers of the Smart Rent order
// workflow and the runner of its effects: it turns the shop's events and
// Inbank's callbacks into Inbank calls and state events, over small
// interfaces (Inbank, Store, Publisher) so that it is tested without NATS.
//
// # Decisions and moves
//
// The decisions are in package order: [order.Decide] is the whole workflow
// as a pure function (from an order's state and the facts at hand it
// chooses the next [order.Move]), and the order's transitions change it in
// memory with the events they imply. This package records inputs
// (inputs.go) and carries moves out (run.go): reads that add a fact and
// decide again, writes (each one compare-and-set), and Inbank calls. Every
// call with a side effect goes through one implementation of claim → call
// → record ([Workflow.claim], the call, then [Workflow.record] or
// [Workflow.callFailed]).
//
// # Delivery and crashes
//
// Every input is first recorded in the order's state (a KV entry changed
// only by compare-and-set), then [Workflow.Advance] drives the order as far
// as it can go. Advance can be run again at any time, by any bridge, after
// any crash: every step looks at the stored state first. Reconciliation
// runs it for unfinished orders without any input, so orders complete with
// no callback at all.
//
// A new order's first write is its first move: it is created already
// holding the session's claim (or already rejected). Its entry in the
// open-orders index is written once its Advance is done, and order.placed
// is acknowledged only after that: an order that is not final is in the
// index, or its order.placed comes again and writes the entry again.
//
// Events to publish are put in the order's outbox in the same write as the
// state that implies them, published, then removed: by a write of the
// order, or, for the events of an order.placed, by naming them in the
// order's index entry (see the writes below). Their ids are derived from
// the order and the step, so a publish repeated after a crash is stored
// once by JetStream's de-duplication.
//
// Inbank calls with a side effect are claimed first: a claim (owner and
// expiry, longer than a request's timeout) is written by compare-and-set
// before the call, and the result is recorded after it. A call that fails
// transiently turns its claim into a hold owned by nobody ([order.RetryHold])
// until the retry is due (Inbank's Retry-After, or the consumers'
// schedule after attempt n), and the input is redelivered then: every
// path that could try the step again (the redelivery, reconciliation,
// another input of the order, another bridge) finds the hold and waits,
// so Inbank is never called sooner than the schedule. An order has at
// most MaxAttempts session creation attempts, whichever path made them;
// then it fails at the step and its order.placed is dead-lettered.
//
// What happens when the process dies between the call and the record:
//
//   - Session creation (no idempotency key at Inbank): the claim expires,
//     another attempt creates a second session. Only a session that was
//     recorded is ever published (session.created is in the outbox of the
//     write that records it); the unrecorded one is never shown to the
//     shop and expires at Inbank at its validUntil. A bridge that dies
//     right after creating a new order (with its claim) leaves the order
//     to the next attempt after the claim expires (CLAIM_TTL).
//   - Identifier assignment is repeatable: it is simply assigned again.
//   - Activation: the next attempt reads the contract first. If it is
//     activated, the activation is recorded without a second call. If not,
//     and the earlier attempt may have reached Inbank (the process died,
//     or the request timed out without an answer), the call is repeated
//     only after ActivationSettle, since activation may take effect
//     asynchronously. An answer of 429 or 502–504 means Inbank did not act,
//     so that attempt is repeated after a short delay.
//
// # What an order costs in JetStream writes
//
// From order.placed (stored by the shop's system) to session.created, a
// new order costs two KV writes and one stream publish; a stateless
// bridge (tools/barebridge, the floor `make bench` compares with) makes
// the publish only. Each write is there for exactly-once:
//
//  1. The order created holding the session's claim (compare-and-set):
//     only the attempt that wins it calls Inbank, and after a crash the
//     claim says a session may exist, so no second one is made until the
//     claim expires (and then only an unpublished orphan can result).
//  2. The session recorded, with session.created in the outbox, in one
//     write: a session is published only once it is recorded, so two
//     attempts can never both show the shop a session.
//  3. session.created published with its fixed id (Nats-Msg-Id).
//
// After it, before order.placed is acknowledged, one more write: the
// order's open-index entry (smartrent_open), naming session.created as
// published. The reconciler finds the order there with no input at all,
// so a lost callback or a crash cannot leave it waiting forever, without
// scanning every finished order. The order itself is not written again
// to empty its outbox: every load of an order drops the outbox events
// known published, those this process saw stored and, once an event is
// older than half the duplicate window (when storing it again might not
// be ignored), those its index entry names; the order's next write then
// stores the outbox without them. A crash between the publication and
// the index entry leaves order.placed unacknowledged: its redelivery
// publishes session.created again (within the duplicate window, ignored
// by the server) and writes the entry, as a crash before the outbox was
// emptied did when a fourth write emptied it.
//
// Before issue 30 a new order cost three KV writes before
// session.created (the index entry first, alongside the order's
// creation) and a fourth after it (the outbox emptied). Inputs other
// than order.placed, and the reconciler, still empty the outbox with a
// write of the order: they have no index entry to write.
//
// What the two writes beside the claim cost, measured (`go run
// ./tools/soak versus -rounds 3`, 2 cores, with the record and the index
// entry made no-ops in a scratch build: the least any design keeping the
// claim could write, since Inbank has no idempotency key; three batches
// each): nats-server CPU per order fell from 1.7–2.1× the stateless
// bridge's to 1.30–1.45× (C = 256) and 1.20–1.44× (C = 64); our
// bridge's only to 1.72–1.91× and 1.54–1.75×, and orders/s at C = 256
// not at all (0.69–0.72: the machine's two cores were nearly all busy,
// and the rest of the workflow's CPU bound it). Dropping the record would
// need session.created itself to be the record (a compare-and-set on
// the events stream, and later inputs reading the session from there);
// dropping the entry, an open-order list kept some other way. Neither is
// done: they buy nats-server's share only.
//
// # Calculation and session together
//
// The session request needs nothing from the calculation's answer (Inbank
// API 01, 04), so after the claim both calls run at once: the customer
// waits one Inbank round trip, not two. The price is still checked before
// the session (eligibility from the cached rental conditions), so what is
// left to go wrong afterwards is rare, and decided so:
//
//   - Calculation refused (4xx) while the session was created: the order
//     fails at the calculation, as when the calculation came first, and the
//     session is never published (it expires at Inbank at its validUntil:
//     the same orphan a crash between call and record leaves).
//   - Calculation failed transiently: the session is recorded, unpublished,
//     in the order's state; the retried delivery only prices it and then
//     publishes session.created. No second session.
//   - Session creation failed: as before; the calculation's answer is
//     dropped (it has no side effect).
package handlers
