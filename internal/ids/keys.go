package ids

import (
	"encoding/base64"
	"regexp"
)

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// OrderKey is the KV key of a default-shop order: the id itself when it is
// made of [A-Za-z0-9_-], otherwise "=" + base64url-without-padding(id).
func OrderKey(orderID string) string {
	if plainKey.MatchString(orderID) {
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
