package session

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// recordLen returns the number of records m holds, expired or not.
func recordLen(m *MemoryStore) int {
	m.recordMu.Lock()
	defer m.recordMu.Unlock()
	return len(m.records)
}

// TestMemoryStoreRecords: round trip, replace, delete, copies and argument
// checks of the memory store's records; a record ends exactly at its ttl
// (present a nanosecond before) and the expired read removes it.
func TestMemoryStoreRecords(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{Now: clock.Now})
	checkRecordContract(t, m, m, 2*time.Second, func(d time.Duration) {
		clock.Advance(d - time.Nanosecond)
		wantRecord(t, m, "ciba:short", []byte("short"), "a nanosecond before its ttl has passed")
		clock.Advance(time.Nanosecond)
	})

	mustPutRecord(t, m, "ciba:gone", []byte("x"), time.Second)
	n := recordLen(m)
	clock.Advance(time.Second)
	wantNoRecord(t, m, "ciba:gone", "after its ttl")
	if got := recordLen(m); got != n-1 {
		t.Errorf("records after reading an expired one = %d, want %d (removed on read)", got, n-1)
	}
}

// TestMemoryStoreRecordShortTTL: with the real clock, a record put for 50 ms
// is gone after 100 ms, and the janitor removes it without a read.
func TestMemoryStoreRecordShortTTL(t *testing.T) {
	m := newTestStore(t, MemoryOptions{SweepInterval: 5 * time.Millisecond})
	mustPutRecord(t, m, "ciba:short", []byte("v"), 50*time.Millisecond)
	mustPutRecord(t, m, "ciba:long", []byte("w"), time.Hour)
	wantRecord(t, m, "ciba:short", []byte("v"), "right after PutRecord")
	time.Sleep(100 * time.Millisecond)
	waitFor(t, 5*time.Second, "the janitor to drop the expired record", func() bool { return recordLen(m) == 1 })
	wantNoRecord(t, m, "ciba:short", "after its ttl")
	wantRecord(t, m, "ciba:long", []byte("w"), "after the sweep")
}

// TestMemoryStoreRecordJanitor: the janitor drops expired records and keeps
// live ones.
func TestMemoryStoreRecordJanitor(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{SweepInterval: time.Millisecond, Now: clock.Now})
	for i := range 100 {
		mustPutRecord(t, m, fmt.Sprintf("ciba:short-%d", i), []byte("v"), time.Minute)
	}
	mustPutRecord(t, m, "ciba:live", []byte("live"), time.Hour)
	clock.Advance(2 * time.Minute)
	waitFor(t, 5*time.Second, "the janitor to drop the expired records", func() bool { return recordLen(m) == 1 })
	wantRecord(t, m, "ciba:live", []byte("live"), "after the sweep")
}

// TestMemoryStoreRecordBound: at MaxRecords, a new record is refused with
// ErrUnavailable and no live record is dropped to make room (each is a login
// someone waits on); replacing a stored key still works; expired records
// make room. The default bound is DefaultMaxRecords.
func TestMemoryStoreRecordBound(t *testing.T) {
	if m := newTestStore(t, MemoryOptions{}); m.maxRecords != DefaultMaxRecords || DefaultMaxRecords != 10_000 {
		t.Errorf("default MaxRecords = %d (DefaultMaxRecords %d), want 10000", m.maxRecords, DefaultMaxRecords)
	}
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{MaxRecords: 3, Now: clock.Now})
	ctx := t.Context()
	mustPutRecord(t, m, "long-0", []byte("l0"), time.Hour)
	mustPutRecord(t, m, "long-1", []byte("l1"), time.Hour)
	mustPutRecord(t, m, "short", []byte("s"), time.Second)

	err := m.PutRecord(ctx, "one-too-many", []byte("x"), time.Hour)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Fatalf("PutRecord() with MaxRecords live records = %v, want ErrUnavailable", err)
	}
	wantNoRecord(t, m, "one-too-many", "after it was refused")
	wantRecord(t, m, "long-0", []byte("l0"), "after a refused PutRecord at the bound")
	wantRecord(t, m, "long-1", []byte("l1"), "after a refused PutRecord at the bound")
	wantRecord(t, m, "short", []byte("s"), "after a refused PutRecord at the bound")

	mustPutRecord(t, m, "long-1", []byte("l1'"), time.Hour) // a replace needs no room
	wantRecord(t, m, "long-1", []byte("l1'"), "replaced at the bound")

	clock.Advance(time.Second) // "short" expires: room for one
	mustPutRecord(t, m, "one-too-many", []byte("x"), time.Hour)
	if n := recordLen(m); n != 3 {
		t.Errorf("records = %d, want 3 (the bound)", n)
	}
	wantRecord(t, m, "one-too-many", []byte("x"), "after room was made")
	wantRecord(t, m, "long-0", []byte("l0"), "after room was made")
	if err := m.PutRecord(ctx, "fourth", []byte("y"), time.Hour); !errors.Is(err, ErrUnavailable) {
		t.Errorf("PutRecord() at the bound again = %v, want ErrUnavailable", err)
	}
	if err := m.DeleteRecord(ctx, "long-0"); err != nil {
		t.Fatal(err)
	}
	mustPutRecord(t, m, "fourth", []byte("y"), time.Hour) // a delete makes room
}
