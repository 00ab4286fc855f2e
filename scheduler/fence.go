package scheduler

import "context"

// Fence guards a duty that must run once at a time (a table migration, a
// recurring schedule) after its lock was taken: Check fails once the lock
// is lost or another holder has taken it since (a newer fencing token), so a
// holder that was paused or partitioned stops before its next side effect
// instead of racing the new holder.
type Fence interface {
	// Token is the fencing token of this holding: it grows with every
	// acquisition of the lock.
	Token() int64
	// Check returns an error when this holding is no longer the current one.
	Check(ctx context.Context) error
}

type fenceKey struct{}

// WithFence returns ctx carrying f, for the duty's code to check.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// CheckFence checks the fence ctx carries, if any: nil when there is none
// (the duty runs unguarded, e.g. `cassata migrate` by hand) or it holds.
func CheckFence(ctx context.Context) error {
	if f, ok := FenceFrom(ctx); ok {
		return f.Check(ctx)
	}
	return nil
}
