package inbank

import (
	"context"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// RetryBriefly retries a repeatable Inbank call (a read, or a call whose
// repetition is harmless) for a short burst on
// transient failures; a Retry-After longer than the burst ends it.
func RetryBriefly(ctx context.Context, fn func(context.Context) error) error {
	b := retry.WithMaxRetries(2, retry.WithCappedDuration(2*time.Second, retry.WithJitterPercent(25, retry.NewExponential(200*time.Millisecond))))
	return retry.Do(ctx, b, func(ctx context.Context) error {
		err := fn(ctx)
		if err == nil || !inbankapi.IsTransient(err) || inbankapi.RetryAfter(err) > 2*time.Second {
			return err
		}
		if ra := inbankapi.RetryAfter(err); ra > 0 {
			select {
			case <-time.After(ra):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return retry.RetryableError(err)
	})
}
