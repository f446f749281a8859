package oidctest

import "time"

// expiringMap is a bounded map whose entries expire. It is not safe for concurrent use: the
// Provider guards every instance with its mutex.
//
// When the map is full, put first drops the expired entries and, if it is still full, one
// arbitrary entry (Go's randomised map iteration). Memory is therefore bounded by max entries
// whatever the request rate.
type expiringMap[V any] struct {
	max int
	m   map[string]expiringEntry[V]
}

type expiringEntry[V any] struct {
	v   V
	exp time.Time
}

func newExpiringMap[V any](maxEntries int) *expiringMap[V] {
	return &expiringMap[V]{max: maxEntries, m: make(map[string]expiringEntry[V])}
}

func (e *expiringMap[V]) put(now time.Time, k string, v V, exp time.Time) {
	if _, ok := e.m[k]; !ok && len(e.m) >= e.max {
		e.sweep(now)
		for victim := range e.m {
			if len(e.m) < e.max {
				break
			}
			delete(e.m, victim)
		}
	}
	e.m[k] = expiringEntry[V]{v: v, exp: exp}
}

// get returns a live entry; an expired one is removed and reported absent.
func (e *expiringMap[V]) get(now time.Time, k string) (V, bool) {
	ent, ok := e.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	if !now.Before(ent.exp) {
		delete(e.m, k)
		var zero V
		return zero, false
	}
	return ent.v, true
}

// take is get followed by delete.
func (e *expiringMap[V]) take(now time.Time, k string) (V, bool) {
	v, ok := e.get(now, k)
	delete(e.m, k)
	return v, ok
}

func (e *expiringMap[V]) del(k string) { delete(e.m, k) }

func (e *expiringMap[V]) len() int { return len(e.m) }

// deleteFunc removes every entry for which drop returns true.
func (e *expiringMap[V]) deleteFunc(drop func(V) bool) {
	for k, ent := range e.m {
		if drop(ent.v) {
			delete(e.m, k)
		}
	}
}

func (e *expiringMap[V]) sweep(now time.Time) {
	for k, ent := range e.m {
		if !now.Before(ent.exp) {
			delete(e.m, k)
		}
	}
}
