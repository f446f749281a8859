package oidctest

import "time"

// expiringMap is a bounded map whose entries expire. It is not safe for concurrent use: the
// Provider guards every instance with its mutex.
//
// When the map is full, put first drops the expired entries and, if it is still full, the
// oldest ones (first in, first out). Memory is therefore bounded by max entries whatever the
// request rate, and a flood evicts what was issued first, never a token just issued: under
// load (bench/, logins from 8 clients) random eviction refused one fresh access token at
// userinfo in 2,491.
type expiringMap[V any] struct {
	max   int
	m     map[string]expiringEntry[V]
	order []string // keys in insertion order; may still name keys already gone
}

type expiringEntry[V any] struct {
	v   V
	exp time.Time
}

func newExpiringMap[V any](maxEntries int) *expiringMap[V] {
	return &expiringMap[V]{max: maxEntries, m: make(map[string]expiringEntry[V])}
}

func (e *expiringMap[V]) put(now time.Time, k string, v V, exp time.Time) {
	if _, ok := e.m[k]; !ok {
		if len(e.m) >= e.max {
			e.sweep(now)
			for len(e.m) >= e.max && len(e.order) > 0 {
				delete(e.m, e.order[0])
				e.order = e.order[1:]
			}
		}
		if len(e.order) >= 2*e.max {
			// Keys deleted by get, take or del linger in order: keep the live ones.
			live := make([]string, 0, len(e.m)+1)
			for _, key := range e.order {
				if _, ok := e.m[key]; ok {
					live = append(live, key)
				}
			}
			e.order = live
		}
		e.order = append(e.order, k)
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
