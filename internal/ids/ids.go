// Package ids holds the one limit of order ids and shop aliases, shared by
// the schemas, the callback token, the state keys and the subjects.
package ids

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The one limit of order ids and shop aliases, the same in every schema,
// the callback token, the KV keys and the subjects (docs/contract.md):
//   - an order id is 1 to MaxOrderIDLen characters of UTF-8 without control
//     characters (schema: maxLength 200, pattern ^[^\p{Cc}]+$);
//   - a shop alias is lower-case letters, digits, - and _, starting with a
//     letter or digit, at most 63 characters.
//
// Within it, every key and subject stays far below nats-server's limits:
// an id of 5,000 characters once made the bridge write a subject the
// server refused by closing the connection.
const MaxOrderIDLen = 200

// ShopAliasPattern is the shape of a shop alias.
var ShopAliasPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ErrInvalidID is an order id or shop alias outside the limit.
var ErrInvalidID = errors.New("outside the limit for ids")

// CheckOrderID reports an order id outside the limit; the error names the
// rule, never the value.
func CheckOrderID(id string) error {
	switch n := utf8.RuneCountInString(id); {
	case id == "":
		return fmt.Errorf("order id is empty: %w", ErrInvalidID)
	case !utf8.ValidString(id):
		return fmt.Errorf("order id is not UTF-8: %w", ErrInvalidID)
	case n > MaxOrderIDLen:
		return fmt.Errorf("order id has %d characters, at most %d allowed: %w", n, MaxOrderIDLen, ErrInvalidID)
	case strings.ContainsFunc(id, unicode.IsControl):
		return fmt.Errorf("order id contains a control character: %w", ErrInvalidID)
	}
	return nil
}

// CheckShopAlias reports a shop alias outside the limit ("" is the
// default shop).
func CheckShopAlias(alias string) error {
	if alias != "" && !ShopAliasPattern.MatchString(alias) {
		return fmt.Errorf("shop alias must be lower-case letters, digits, - and _, at most 63: %w", ErrInvalidID)
	}
	return nil
}

// DefaultShop is the name of the shop the INBANK_* settings configure. An
// event without a shop belongs to it, and order state and events leave
// its alias out (""); logs, metrics and traces name it "default". These
// two functions are the only translation between the spellings.
const DefaultShop = "default"

// ShopName is how logs, metrics and traces name a shop: DefaultShop for "".
func ShopName(alias string) string {
	if alias == "" {
		return DefaultShop
	}
	return alias
}

// ShopAlias is how order state and events name a shop: "" for the default
// shop, however it was named.
func ShopAlias(name string) string {
	if name == DefaultShop {
		return ""
	}
	return name
}
