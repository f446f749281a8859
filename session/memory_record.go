package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// recordEntry is a record stored by PutRecord.
type recordEntry struct {
	value []byte // the store's own copy; never modified
	exp   int64  // unix ns
}

// PutRecord stores a copy of value under key for ttl, replacing any record
// of that key. Keys are remembered as their SHA-256. When MaxRecords records
// are stored and key is new, the expired ones are dropped first; if all are
// live, PutRecord fails with ErrUnavailable rather than drop one.
func (m *MemoryStore) PutRecord(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkRecord(key, value, ttl); err != nil {
		return err
	}
	h := sha256.Sum256([]byte(key))
	now := unixNano(m.now())
	e := recordEntry{value: bytes.Clone(value), exp: addNanos(now, ttl)}
	if e.value == nil {
		e.value = []byte{}
	}

	m.recordMu.Lock()
	defer m.recordMu.Unlock()
	if _, ok := m.records[h]; !ok && len(m.records) >= m.maxRecords {
		m.sweepRecordsLocked(now)
		if len(m.records) >= m.maxRecords {
			return fmt.Errorf("%w: memory store: %d records stored, the most allowed (MaxRecords)", ErrUnavailable, len(m.records))
		}
	}
	m.records[h] = e
	return nil
}

// GetRecord returns a copy of the record stored under key, or ErrNotFound
// when there is none or it has expired (an expired record is removed).
func (m *MemoryStore) GetRecord(_ context.Context, key string) ([]byte, error) {
	if err := checkRecordKey(key); err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(key))
	now := unixNano(m.now())

	m.recordMu.Lock()
	defer m.recordMu.Unlock()
	e, ok := m.records[h]
	if !ok {
		return nil, ErrNotFound
	}
	if now >= e.exp {
		delete(m.records, h)
		return nil, ErrNotFound
	}
	return bytes.Clone(e.value), nil
}

// DeleteRecord removes the record stored under key, if any.
func (m *MemoryStore) DeleteRecord(_ context.Context, key string) error {
	if err := checkRecordKey(key); err != nil {
		return err
	}
	h := sha256.Sum256([]byte(key))
	m.recordMu.Lock()
	delete(m.records, h)
	m.recordMu.Unlock()
	return nil
}

// sweepRecordsLocked drops every expired record. m.recordMu must be held.
func (m *MemoryStore) sweepRecordsLocked(now int64) {
	for h, e := range m.records {
		if now >= e.exp {
			delete(m.records, h)
		}
	}
}
