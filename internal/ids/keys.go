package ids

import (
	"encoding/base64"
)

// plainKey reports whether id is made of [A-Za-z0-9_-] only (and is not
// empty). A loop, not a regexp: keys are made several times per order, and
// the regexp cost about 1 % of the bridge's CPU.
func plainKey(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; !IsAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return id != ""
}

// IsAlnum reports whether c is an ASCII letter or digit.
func IsAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// OrderKey is the KV key of a default-shop order: the id itself when it is
// made of [A-Za-z0-9_-], otherwise "=" + base64url-without-padding(id).
func OrderKey(orderID string) string {
	if plainKey(orderID) {
		return orderID
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(orderID))
}

// StateKey is the KV key of a shop's order: [OrderKey] for the default
// shop (""), alias + "." + OrderKey(orderID) for another. It is injective
// in (shop, order id): OrderKey never contains a dot, an alias never
// contains a dot, and OrderKey is injective (a plain key never starts with
// "="). So no id or alias can produce another pair's key, and keys of the
// default shop are what they always were.
func StateKey(shop, orderID string) string {
	if shop == "" {
		return OrderKey(orderID)
	}
	return shop + "." + OrderKey(orderID)
}
