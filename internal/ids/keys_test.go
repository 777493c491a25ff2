package ids

import (
	"regexp"
	"strings"
	"testing"
)

var hostileIDs = []string{"lv-web/ORD-1", "ORD-1", ".", "*", ">", "../x", "a b", "ü-ßø-注文", "lv-web.ORD-1", "=bHYtd2Vi", strings.Repeat("x", 200), strings.Repeat("注", 200)}

// TestStateKeyIsInjective: no order id or alias produces another (shop,
// order id) pair's key, and every key is one the server accepts.
func TestStateKeyIsInjective(t *testing.T) {
	seen := map[string][2]string{}
	for _, shop := range []string{"", "lv-web", "lv", "web", "a", "lv-web-2"} {
		for _, id := range hostileIDs {
			k := StateKey(shop, id)
			if prev, dup := seen[k]; dup {
				t.Fatalf("(%q,%q) and (%q,%q) share key %s", shop, id, prev[0], prev[1], k)
			}
			seen[k] = [2]string{shop, id}
			if len(k) > 1200 || strings.ContainsAny(k, " *>") {
				t.Errorf("key %q of (%q,%q) is not a plain KV key", k, shop, id)
			}
		}
	}
	if StateKey("", "ORD-1") != "ORD-1" || StateKey("", "lv-web/ORD-1") != OrderKey("lv-web/ORD-1") {
		t.Fatal("default-shop keys changed")
	}
}

func TestOrderKey(t *testing.T) {
	tests := []struct{ id, want string }{
		{"ORD-1001", "ORD-1001"},
		{"a_b-C9", "a_b-C9"},
		{"shop/1001", "=c2hvcC8xMDAx"},
		{"ä", "=w6Q"},
		{"a.b", "=YS5i"},
	}
	for _, tt := range tests {
		if got := OrderKey(tt.id); got != tt.want {
			t.Errorf("OrderKey(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

// FuzzPlainKey: the byte loop accepts exactly what the pattern of the
// documented key rule, ^[A-Za-z0-9_-]+$, accepts.
func FuzzPlainKey(f *testing.F) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	for _, id := range append(hostileIDs, "", "a", "Z9_-", "a\n", "\x00", "ab\xff") {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := plainKey(id), pattern.MatchString(id); got != want {
			t.Fatalf("plainKey(%q) = %v, the pattern says %v", id, got, want)
		}
	})
}
