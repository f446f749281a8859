package session_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/session"
)

func ExampleCodec() {
	// Secrets come from configuration; at least 32 bytes each, newest first.
	newSecret := []byte("0123456789abcdef0123456789abcdef-new")
	oldSecret := []byte("0123456789abcdef0123456789abcdef-old")
	codec, err := session.NewCodec([][]byte{newSecret, oldSecret}, 8*time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	id := session.NewID()
	value, err := codec.Encode("__Host-trustgate", id)
	if err != nil {
		fmt.Println(err)
		return
	}

	var got string
	err = codec.Decode("__Host-trustgate", value, &got)
	fmt.Println(err == nil && got == id && session.ValidID(got))

	// The same value under another cookie name is not accepted.
	err = codec.Decode("__Host-other", value, &got)
	fmt.Println(errors.Is(err, session.ErrInvalidCookie))
	// Output:
	// true
	// true
}

func ExampleMemoryStore() {
	ctx := context.Background()
	store := session.NewMemoryStore(session.MemoryOptions{MaxSessions: 10_000})
	defer store.Close()

	now := time.Now()
	s := &session.Session{
		ID:          session.NewID(),
		Issuer:      "https://idp.example",
		ClientID:    "trustgate",
		Subject:     "248289761001",
		Claims:      map[string]any{"email": "janedoe@example.com"},
		CreatedAt:   now,
		ExpiresAt:   now.Add(8 * time.Hour),
		IdleTimeout: time.Hour,
	}
	if err := store.Put(ctx, s); err != nil {
		fmt.Println(err)
		return
	}

	// A change is a new version: clone, modify, Put.
	got, _ := store.Get(ctx, s.ID)
	next := got.Clone()
	next.Claims["email_verified"] = true
	_ = store.Put(ctx, next)
	got, _ = store.Get(ctx, s.ID)
	fmt.Println(got.Subject, got.Version)

	// Logout.
	_ = store.Delete(ctx, s.ID)
	_, err := store.Get(ctx, s.ID)
	fmt.Println(errors.Is(err, session.ErrNotFound))

	// Single-use values: the login state may be redeemed once.
	first, _ := store.Once(ctx, "state:"+session.NewID(), 10*time.Minute)
	fmt.Println(first)
	// Output:
	// 248289761001 2
	// true
	// true
}
