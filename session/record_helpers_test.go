package session

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// recordHeld is the ttl of the records in checkRecordContract that must not
// expire during the test.
const recordHeld = time.Minute

// mustPutRecord stores a record or fails the test.
func mustPutRecord(tb testing.TB, st Store, key string, value []byte, ttl time.Duration) {
	tb.Helper()
	if err := st.PutRecord(tb.Context(), key, value, ttl); err != nil {
		tb.Fatalf("PutRecord(%q) = %v, want nil", key, err)
	}
}

// wantRecord fails the test unless GetRecord returns want.
func wantRecord(tb testing.TB, st Store, key string, want []byte, why string) {
	tb.Helper()
	got, err := st.GetRecord(tb.Context(), key)
	if err != nil || !bytes.Equal(got, want) {
		tb.Fatalf("GetRecord(%q) %s = (%.40q, %v), want (%.40q, nil)", key, why, got, err, want)
	}
}

// wantNoRecord fails the test unless GetRecord reports ErrNotFound (and
// nothing else: not an outage, not a value).
func wantNoRecord(tb testing.TB, st Store, key, why string) {
	tb.Helper()
	got, err := st.GetRecord(tb.Context(), key)
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) || got != nil {
		tb.Fatalf("GetRecord(%q) %s = (%.40q, %v), want (nil, ErrNotFound)", key, why, got, err)
	}
}

// wantRecordArgError fails the test unless err is a validation error: not
// nil, neither ErrNotFound nor ErrUnavailable.
func wantRecordArgError(tb testing.TB, call string, err error) {
	tb.Helper()
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		tb.Errorf("%s = %v, want a validation error", call, err)
	}
}

// checkRecordContract checks the record contract of Store on a and b, two
// handles of one store (two gateway instances on one Redis; the same memory
// store twice). expireAfter makes ttl pass for the store: records put with
// ttl expire then, records put with recordHeld do not.
func checkRecordContract(t *testing.T, a, b Store, ttl time.Duration, expireAfter func(time.Duration)) {
	t.Helper()
	ctx := t.Context()
	const key = "ciba:req-1"
	v1 := []byte(`{"auth_req_id":"req-1","state":"pending"}`)
	v2 := []byte(`{"auth_req_id":"req-1","state":"approved"}`)

	// Absent, then visible on both handles at once: no cache in between.
	wantNoRecord(t, b, key, "before any PutRecord")
	mustPutRecord(t, a, key, v1, recordHeld)
	wantRecord(t, b, key, v1, "on the other instance right after PutRecord")
	wantRecord(t, a, key, v1, "on the instance that put it")

	// The store keeps its own copy: neither the caller's slice nor a returned
	// one reaches it.
	in := append([]byte(nil), v1...)
	mustPutRecord(t, a, "ciba:copy", in, recordHeld)
	in[0] = 'X'
	wantRecord(t, b, "ciba:copy", v1, "after the caller changed the slice it put")
	got, err := a.GetRecord(ctx, "ciba:copy")
	if err != nil {
		t.Fatalf("GetRecord(ciba:copy) = %v", err)
	}
	got[0] = 'Y'
	wantRecord(t, b, "ciba:copy", v1, "after the caller changed a returned slice")

	// Replace, from either side; other keys are untouched.
	mustPutRecord(t, b, "ciba:req-2", []byte("other"), recordHeld)
	mustPutRecord(t, b, key, v2, recordHeld)
	wantRecord(t, a, key, v2, "after B replaced it")
	wantRecord(t, a, "ciba:req-2", []byte("other"), "after another key was replaced")

	// Delete, from either side; deleting an absent record is no error.
	if err := a.DeleteRecord(ctx, key); err != nil {
		t.Fatalf("DeleteRecord(%q) = %v, want nil", key, err)
	}
	wantNoRecord(t, b, key, "on the other instance after DeleteRecord")
	wantNoRecord(t, a, key, "after DeleteRecord")
	if err := b.DeleteRecord(ctx, key); err != nil {
		t.Errorf("DeleteRecord(%q) of an absent record = %v, want nil", key, err)
	}
	wantRecord(t, b, "ciba:req-2", []byte("other"), "after another key was deleted")

	// Expiry: a record ends after its ttl, on every instance; a longer one
	// stays. A replace sets the new ttl (a short record made long survives).
	const short, extended = "ciba:short", "ciba:extended"
	mustPutRecord(t, a, short, []byte("short"), ttl)
	mustPutRecord(t, a, extended, []byte("first"), ttl)
	mustPutRecord(t, b, extended, []byte("second"), recordHeld)
	wantRecord(t, b, short, []byte("short"), "before its ttl has passed")
	expireAfter(ttl)
	wantNoRecord(t, a, short, "after its ttl")
	wantNoRecord(t, b, short, "on the other instance after its ttl")
	wantRecord(t, a, extended, []byte("second"), "after the first ttl, replaced with a longer one")
	wantRecord(t, a, "ciba:req-2", []byte("other"), "after a shorter record's ttl")

	// Sizes: empty and exactly MaxRecordSize are records; one byte more is
	// refused and leaves the stored record alone.
	mustPutRecord(t, a, "ciba:empty", []byte{}, recordHeld)
	if got, err := b.GetRecord(ctx, "ciba:empty"); err != nil || len(got) != 0 {
		t.Errorf("GetRecord(ciba:empty) = (%q, %v), want (empty, nil)", got, err)
	}
	full := bytes.Repeat([]byte{0xA5}, MaxRecordSize)
	mustPutRecord(t, a, "ciba:full", full, recordHeld)
	wantRecord(t, b, "ciba:full", full, "of exactly MaxRecordSize bytes")
	err = a.PutRecord(ctx, "ciba:full", make([]byte, MaxRecordSize+1), recordHeld)
	wantRecordArgError(t, "PutRecord(MaxRecordSize+1 bytes)", err)
	if err != nil && !strings.Contains(err.Error(), "4097") {
		t.Errorf("PutRecord(MaxRecordSize+1 bytes) = %v, want the size named", err)
	}
	wantRecord(t, b, "ciba:full", full, "after an oversized PutRecord of its key")

	// Invalid arguments are errors of the caller.
	wantRecordArgError(t, "PutRecord(empty key)", a.PutRecord(ctx, "", v1, time.Second))
	wantRecordArgError(t, "PutRecord(zero ttl)", a.PutRecord(ctx, "k", v1, 0))
	wantRecordArgError(t, "PutRecord(negative ttl)", a.PutRecord(ctx, "k", v1, -time.Second))
	_, err = a.GetRecord(ctx, "")
	wantRecordArgError(t, "GetRecord(empty key)", err)
	wantRecordArgError(t, "DeleteRecord(empty key)", a.DeleteRecord(ctx, ""))
	wantNoRecord(t, b, "k", "after refused PutRecord calls")
}
