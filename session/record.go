package session

import (
	"errors"
	"fmt"
	"time"
)

// MaxRecordSize is the largest value [RecordStore.PutRecord] accepts: 4 KiB.
const MaxRecordSize = 4 << 10

var (
	errEmptyRecordKey       = errors.New("session: record: empty key")
	errNonPositiveRecordTTL = errors.New("session: record: ttl must be positive")
)

// checkRecordKey rejects an empty record key.
func checkRecordKey(key string) error {
	if key == "" {
		return errEmptyRecordKey
	}
	return nil
}

// checkRecord validates the arguments of PutRecord. The error names the
// size of an oversized value, never its content.
func checkRecord(key string, value []byte, ttl time.Duration) error {
	switch {
	case key == "":
		return errEmptyRecordKey
	case ttl <= 0:
		return errNonPositiveRecordTTL
	case len(value) > MaxRecordSize:
		return fmt.Errorf("session: record: value is %d bytes, more than the %d allowed", len(value), MaxRecordSize)
	}
	return nil
}
