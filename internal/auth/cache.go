package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers verified tokens by digest, bounded in size and age.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	c     *Claims // never handed out: get returns it for copying
	added time.Time
}

func newTokenCache(max int, ttl time.Duration) *tokenCache {
	return &tokenCache{max: max, ttl: ttl, entries: make(map[[sha256.Size]byte]cacheEntry, min(max, 1024))}
}

func (tc *tokenCache) get(k [sha256.Size]byte, now time.Time) (*Claims, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	e, ok := tc.entries[k]
	if !ok {
		return nil, false
	}
	if now.Sub(e.added) >= tc.ttl || now.Before(e.added) {
		delete(tc.entries, k)
		return nil, false
	}
	return e.c, true
}

func (tc *tokenCache) put(k [sha256.Size]byte, c *Claims, now time.Time) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.entries) >= tc.max {
		// Full: drop about a tenth, chosen at random (map order).
		n := tc.max/10 + 1
		for k2 := range tc.entries {
			delete(tc.entries, k2)
			if n--; n == 0 {
				break
			}
		}
	}
	tc.entries[k] = cacheEntry{c: c, added: now}
}

func (tc *tokenCache) remove(k [sha256.Size]byte) {
	tc.mu.Lock()
	delete(tc.entries, k)
	tc.mu.Unlock()
}
