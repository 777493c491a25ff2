package orderstore

import (
	"regexp"
	"testing"
)

// FuzzValidKey: the byte loop accepts exactly what the KV key pattern
// ^[-/_=.a-zA-Z0-9]+$ accepts.
func FuzzValidKey(f *testing.F) {
	pattern := regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)
	for _, k := range []string{"", "a", "lv-web.=YS5i", "a b", "a*", ">", "a.b/c_d=e-f", "ü", "a\n", "\x00", "x\xff"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if got, want := validKey(key), pattern.MatchString(key); got != want {
			t.Fatalf("validKey(%q) = %v, the pattern says %v", key, got, want)
		}
	})
}
