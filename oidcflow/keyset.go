package oidcflow

import (
	"context"
	"errors"

	"github.com/coreos/go-oidc/v3/oidc"
)

// keySet wraps go-oidc's RemoteKeySet (JWKS cache, refetch on an unknown kid) to tell a
// failure to fetch the keys (the OP is unavailable: temporary) from a signature that does
// not verify (the token is bad). go-oidc's verifier flattens both into one error string, so
// the fetch failure is recorded in a slot that the caller put in the context.
type keySet struct{ remote *oidc.RemoteKeySet }

type keyFetchSlot struct{}

// withKeyFetchSlot returns a context whose key set verifications record a key fetch
// failure in *slot.
func withKeyFetchSlot(ctx context.Context) (context.Context, *error) {
	slot := new(error)
	return context.WithValue(ctx, keyFetchSlot{}, slot), slot
}

func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.VerifySignature(ctx, jwt)
	// RemoteKeySet wraps (%w) only a failed key fetch ("fetching keys ..."); a malformed
	// token or a signature that does not verify is a flat error.
	if err != nil && errors.Unwrap(err) != nil {
		if slot, ok := ctx.Value(keyFetchSlot{}).(*error); ok {
			*slot = err
		}
	}
	return payload, err
}

// Interface guard
var _ oidc.KeySet = (*keySet)(nil)
