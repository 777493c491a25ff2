package ids

import "testing"

// TestDefaultShopSpellings: the default shop is "" in state and events and
// "default" in logs and metrics; the two functions translate both ways
// and leave other aliases alone.
func TestDefaultShopSpellings(t *testing.T) {
	for in, want := range map[string]string{"": "default", "default": "default", "lv-web": "lv-web"} {
		if got := ShopName(in); got != want {
			t.Errorf("ShopName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"": "", "default": "", "lv-web": "lv-web"} {
		if got := ShopAlias(in); got != want {
			t.Errorf("ShopAlias(%q) = %q, want %q", in, got, want)
		}
	}
	for _, alias := range []string{"", "default", "ee-shop"} {
		if ShopAlias(ShopName(alias)) != ShopAlias(alias) {
			t.Errorf("round trip of %q", alias)
		}
	}
}
