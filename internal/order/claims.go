package order

import (
	"fmt"
	"time"
)

// The steps with a side effect at Inbank each have a claim in the order:
// an attempt writes its claim (by compare-and-set) before the call, so
// that only one attempt calls, and records the result after it.

// claimOf is the claim of a step with a side effect.
func (o *Order) claimOf(step string) **Claim {
	switch step {
	case StepSession:
		return &o.SessionClaim
	case StepIdentifiers:
		return &o.IdentifiersClaim
	case StepActivate:
		return &o.ActivationClaim
	}
	panic(fmt.Sprintf("order: step %q has no claim", step)) // the runner names only these three
}

// TakeClaim reserves step for owner (an attempt) until until, and counts
// the attempt: session creation and activation have bounded, reported
// attempts; an activation attempt may reach Inbank from here on.
func (o *Order) TakeClaim(step, owner string, until, now time.Time) {
	*o.claimOf(step) = &Claim{Owner: owner, Until: until}
	switch step {
	case StepSession:
		o.SessionAttempts++
		o.Note(now, fmt.Sprintf("creating session (attempt %d)", o.SessionAttempts))
	case StepActivate:
		o.ActivationAttempts++
		o.ActivationUncertain = &now
		o.Note(now, fmt.Sprintf("activating (attempt %d)", o.ActivationAttempts))
	}
}

// ClaimedBy reports whether owner still holds step's claim: a claim that
// expired may have been taken over by another attempt.
func (o *Order) ClaimedBy(step, owner string) bool {
	c := *o.claimOf(step)
	return c != nil && c.Owner == owner
}

// Attempts is how many attempts step has had, for order.failed and the
// retry schedule (0 for a step that does not count them).
func (o *Order) Attempts(step string) int {
	switch step {
	case StepSession:
		return o.SessionAttempts
	case StepActivate:
		return o.ActivationAttempts
	}
	return 0
}

// HoldForRetry turns owner's claim of step, whose call failed
// transiently, into a hold nobody owns until until ([RetryHold]): every
// path that could try the step again waits for it. notApplied says Inbank
// certainly did not act (429, 502–504, or never sent): an activation
// attempt is then certain, and its retry calls again without reading the
// contract first. It reports false when the claim is no longer owner's:
// nothing to write.
func (o *Order) HoldForRetry(step, owner string, until time.Time, notApplied bool) bool {
	if !o.ClaimedBy(step, owner) {
		return false
	}
	*o.claimOf(step) = &Claim{Owner: RetryHold, Until: until}
	if step == StepActivate && notApplied {
		o.ActivationUncertain = nil
	}
	return true
}

// releaseClaim drops step's claim if owner still holds it.
func (o *Order) releaseClaim(step, owner string) {
	if o.ClaimedBy(step, owner) {
		*o.claimOf(step) = nil
	}
}

// ClaimReconciliation reserves the order's reconciliation for bridge
// until until. It reports false when another bridge holds it.
func (o *Order) ClaimReconciliation(bridge string, until, now time.Time) bool {
	if o.ReconcileClaim.HeldBy(bridge, now) {
		return false
	}
	o.ReconcileClaim = &Claim{Owner: bridge, Until: until}
	return true
}
