// Package callbacktoken makes and checks the token in the callback URL the
// bridge gives Inbank (contract: "Callback token"):
//
//	token = base64url(orderId) "." base64url(HMAC-SHA256(secret, "smartrent-callback-v1:" + orderId))
//
// without padding. The first secret signs; every secret verifies, so a
// secret can be rotated by prepending the new one and removing the old one
// once no session signed with it is still open.
//
// An order of another shop than the default gets a third part, and its
// signature covers the shop too, so a callback can never be applied to
// another shop's order:
//
//	base64url(orderId) "." base64url(HMAC-SHA256(secret, "smartrent-callback-v1/shop:" + shop + ":" + orderId)) "." base64url(shop)
package callbacktoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
	"sync"

	"github.com/smartrent-bridge/bridge/internal/ids"
)

// PathPrefix is where the ingress serves callbacks.
const PathPrefix = "/v1/inbank/callbacks/"

const (
	domain     = "smartrent-callback-v1:"
	shopDomain = "smartrent-callback-v1/shop:"
)

// maxOrderIDBytes bounds what a token may name before it is decoded, so a
// huge path costs nothing: the longest id within the limit of package ids
// (200 characters of up to 4 bytes each).
const maxOrderIDBytes = 4 * ids.MaxOrderIDLen

var enc = base64.RawURLEncoding.Strict()

// Signer makes and verifies tokens. It is safe for concurrent use.
type Signer struct {
	mu      sync.RWMutex
	secrets []*secret
}

// secret is one key with its reusable HMACs: the ingress verifies a token
// per request, and a fresh HMAC per call was a visible share of its
// allocations.
type secret struct {
	key  []byte
	macs sync.Pool // hash.Hash
}

// mac computes the token signature of (shop, orderID) into dst.
func (k *secret) mac(dst []byte, shop, orderID string) []byte {
	m, _ := k.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, k.key)
	}
	m.Reset()
	if shop == "" {
		m.Write([]byte(domain))
	} else {
		m.Write([]byte(shopDomain + shop + ":"))
	}
	m.Write([]byte(orderID))
	out := m.Sum(dst)
	k.macs.Put(m)
	return out
}

// ErrNoSecret is returned when no usable secret is configured.
var ErrNoSecret = errors.New("callback secret is required")

// New returns a signer over secrets: the first signs, all verify. Empty
// entries are ignored; secrets shorter than 16 bytes are refused.
func New(secrets []string) (*Signer, error) {
	s := &Signer{}
	if err := s.Replace(secrets); err != nil {
		return nil, err
	}
	return s, nil
}

// Replace swaps the secrets (a rotated secret file re-read on SIGHUP). On
// an error the old secrets stay.
func (s *Signer) Replace(secrets []string) error {
	var out []*secret
	for _, sec := range secrets {
		sec = strings.TrimSpace(sec)
		if sec == "" {
			continue
		}
		if len(sec) < 16 {
			return errors.New("callback secret must be at least 16 characters")
		}
		out = append(out, &secret{key: []byte(sec)})
	}
	if len(out) == 0 {
		return ErrNoSecret
	}
	s.mu.Lock()
	s.secrets = out
	s.mu.Unlock()
	return nil
}

func (s *Signer) current() []*secret {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.secrets
}

// Parse splits a CALLBACK_SECRET value ("new,old") into secrets.
func Parse(list string) []string { return strings.Split(list, ",") }

// Token returns the token for orderID of the default shop, signed with the
// first secret.
func (s *Signer) Token(orderID string) string { return s.TokenFor("", orderID) }

// TokenFor returns the token for orderID of shop ("" for the default shop).
func (s *Signer) TokenFor(shop, orderID string) string {
	t := enc.EncodeToString([]byte(orderID)) + "." + enc.EncodeToString(s.current()[0].mac(nil, shop, orderID))
	if shop != "" {
		t += "." + enc.EncodeToString([]byte(shop))
	}
	return t
}

// URL returns the callback URL for orderID of shop ("" for the default
// shop) under base (the ingress's public base URL).
func (s *Signer) URL(base, shop, orderID string) string {
	return strings.TrimRight(base, "/") + PathPrefix + s.TokenFor(shop, orderID)
}

// Verify returns the order (and its shop, "" for the default shop) a token
// names, or ok=false for a token that is malformed, in another encoding
// (padding, standard alphabet), or not signed by any configured secret.
// Comparison is in constant time.
func (s *Signer) Verify(token string) (orderID, shop string, ok bool) {
	idPart, rest, found := strings.Cut(token, ".")
	sigPart, shopPart, hasShop := strings.Cut(rest, ".")
	if !found || idPart == "" || len(idPart) > enc.EncodedLen(maxOrderIDBytes) || len(sigPart) != enc.EncodedLen(sha256.Size) {
		return "", "", false
	}
	if hasShop {
		b, err := enc.DecodeString(shopPart)
		if err != nil || len(b) == 0 || len(b) > 63 || enc.EncodeToString(b) != shopPart {
			return "", "", false
		}
		shop = string(b)
	}
	id, err := enc.DecodeString(idPart)
	if err != nil || len(id) == 0 {
		return "", "", false
	}
	var sigBuf, macBuf [sha256.Size]byte
	var encBuf [43]byte // enc.EncodedLen(sha256.Size)
	sig := sigBuf[:]
	if n, err := enc.Decode(sig, []byte(sigPart)); err != nil || n != sha256.Size {
		return "", "", false
	}
	// Strict decoding already refuses padding and stray bits; re-encoding
	// guards against any other non-canonical form.
	if enc.EncodeToString(id) != idPart || string(enc.AppendEncode(encBuf[:0], sig)) != sigPart {
		return "", "", false
	}
	valid := false
	for _, sec := range s.current() {
		if hmac.Equal(sig, sec.mac(macBuf[:0], shop, string(id))) {
			valid = true // no early return: every secret costs the same
		}
	}
	// Only ids and aliases within the product's limit are ever signed.
	if !valid || ids.CheckOrderID(string(id)) != nil || ids.CheckShopAlias(shop) != nil {
		return "", "", false
	}
	return string(id), shop, true
}
